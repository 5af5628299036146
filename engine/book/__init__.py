"""The episode book: what the server has recorded of every episode, kept on disk.

`store.EpisodeBook` is the book (SQLite, WAL mode, under the server's data dir);
`schema` versions its tables; `media` keeps recorded screenshots and observation
texts as files; `cursor.BookCursor` tracks what of one live episode the book
already holds; `restart` settles the episodes a killed server left running.
"""

from engine.book.errors import BookError, BookWriteError
from engine.book.store import BookEntry, BookSummary, EpisodeBook, Pruned

__all__ = ["BookEntry", "BookError", "BookSummary", "BookWriteError", "EpisodeBook", "Pruned"]
