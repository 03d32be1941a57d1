"""Answering a question from retrieved passages: offline (extractive) or with Gemini."""
