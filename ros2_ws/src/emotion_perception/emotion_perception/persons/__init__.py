"""Persons, not faces: re-identify the people behind face tracks across absences (docs/persons.md)."""
from .embedder import DlibFaceEmbedder, create_embedder
from .gallery import GalleryError, PersonGallery, forget_persons
from .identity import PersonIdentifier

__all__ = ["DlibFaceEmbedder", "GalleryError", "PersonGallery", "PersonIdentifier", "create_embedder", "forget_persons"]
