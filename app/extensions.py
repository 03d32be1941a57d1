"""Every Flask extension object, created unbound here and bound to the app in `create_app`."""

from flask_cors import CORS
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

from app.models import Base

# On the models' own base: db.metadata is Base.metadata, what Flask-Migrate hands Alembic.
db = SQLAlchemy(model_class=Base)
migrate = Migrate()
cors = CORS()
