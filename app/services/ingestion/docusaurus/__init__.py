"""Read a Docusaurus docs folder the way Docusaurus does.

The rules follow Docusaurus 3 (plugin-content-docs, mdx-loader) and github-slugger, so that
every route and anchor computed here is the one the published site serves:

- which files are pages, and each page read whole (``pages``: ``discover_pages``,
  ``parse_page``, ``read_book``);
- each page's id, route and front matter values (``front_matter``);
- heading text and ids (``slugs``: ``slugify_heading``, ``Slugger``);
- MDX syntax removed, its text kept (``mdx``), code fences kept verbatim (``fences``);
- each page's sections (``sections``): the text under each heading, ATX (``## Title``) or
  setext (``Title`` over ``===`` or ``---``), with the heading's id (``Section.anchor``), plus
  one small section per option row of an ``<APITable>``, whose rows the site gives an id too.
  Markdown partials (``import X from './_x.mdx'`` then ``<X />``) are inlined where used, as
  the site renders them.

Pure Python, no network; nothing here knows about Flask or the rest of the app. Import from
this package: the modules below it are its parts, not its interface.
"""

from app.services.ingestion.docusaurus.fences import closes_fence, parse_fence_opener
from app.services.ingestion.docusaurus.pages import Page, discover_pages, parse_page, read_book
from app.services.ingestion.docusaurus.sections import Section
from app.services.ingestion.docusaurus.slugs import Slugger, slugify_heading

__all__ = [
    "Page",
    "Section",
    "Slugger",
    "closes_fence",
    "discover_pages",
    "parse_fence_opener",
    "parse_page",
    "read_book",
    "slugify_heading",
]
