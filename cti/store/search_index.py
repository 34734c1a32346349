"""The knowledge base's search index, kb_search: raw DDL, one table per backend, over the same words
(cti.kb.text.index_text: jieba's words joined by spaces).

- SQLite: an FTS5 virtual table (title, tags, body), its rowid the article's id, split by unicode61 on the
  spaces; ranked by bm25() with the title weighing most.
- PostgreSQL: a table of one tsvector per article, the words given as lexemes (array_to_tsvector: no parser
  and no locale between the words and the index, so a database in the C locale indexes Chinese as one in
  zh_CN.UTF-8 would), weighted A (title), B (tags), D (body), under a GIN index; ranked by ts_rank.

Neither is a model of cti.store.models (an FTS5 table has no SQLAlchemy form): they are made right after
kb_articles (create_all, and the revision that adds the knowledge base) and dropped right before it.
SEARCH_TABLES names them and FTS5's own tables, which comparisons of the schema with the models leave out.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

TABLE = "kb_search"
# kb_search and the tables FTS5 keeps it in
SEARCH_TABLES = frozenset({TABLE} | {f"{TABLE}_{part}" for part in ("data", "idx", "content", "docsize", "config")})

SQLITE = [f"CREATE VIRTUAL TABLE IF NOT EXISTS {TABLE} USING fts5(title, tags, body, "
          "tokenize = 'unicode61 remove_diacritics 0')"]
POSTGRESQL = [f"CREATE TABLE IF NOT EXISTS {TABLE} (article_id INTEGER PRIMARY KEY, document tsvector NOT NULL)",
              f"CREATE INDEX IF NOT EXISTS ix_{TABLE}_document ON {TABLE} USING gin (document)"]


def create(connection: Connection) -> None:
    for statement in SQLITE if connection.dialect.name == "sqlite" else POSTGRESQL:
        connection.execute(text(statement))


def drop(connection: Connection) -> None:
    connection.execute(text(f"DROP TABLE IF EXISTS {TABLE}"))


def create_listener(target: Any, connection: Connection, **kw: Any) -> None:
    create(connection)


def drop_listener(target: Any, connection: Connection, **kw: Any) -> None:
    drop(connection)


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """For alembic's comparisons (include_name): everything but the search index's tables."""
    return not (type_ == "table" and name in SEARCH_TABLES)
