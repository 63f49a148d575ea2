"""A live source for CDC tests: a thread inserting, updating (vectors, metadata, text) and
deleting rows of a ``make_docs_table`` table until stopped."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql


class Writer(threading.Thread):
    def __init__(self, dsn: str, table: str, ids: list[int], dim: int, seed: int = 7, pause: float = 0.001) -> None:
        super().__init__(daemon=True, name="cdc-writer")
        self.dsn, self.table, self.dim, self.pause = dsn, table, dim, pause
        self.ids = list(ids)
        self.next_id = max(ids) + 1
        self.rng = random.Random(seed)
        self.halt = threading.Event()
        self.ops: dict[str, int] = {"insert": 0, "update": 0, "delete": 0, "transactions": 0}
        self.error: BaseException | None = None

    def stop(self) -> dict[str, int]:
        self.halt.set()
        self.join(timeout=90)
        assert not self.is_alive(), "the writer did not stop"
        if self.error is not None:
            raise self.error
        return self.ops

    def _vector(self) -> np.ndarray:
        v = np.asarray([self.rng.gauss(0, 1) for _ in range(self.dim)], dtype=np.float32)
        return v / np.linalg.norm(v)

    def run(self) -> None:
        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                register_vector(conn)
                while not self.halt.is_set():
                    with conn.transaction():
                        for _ in range(self.rng.choice((1, 1, 1, 2, 5))):
                            self._one(conn)
                    self.ops["transactions"] += 1
                    time.sleep(self.pause)
        except BaseException as e:
            self.error = e

    def _one(self, conn: psycopg.Connection[Any]) -> None:
        t = sql.Identifier(self.table)
        r = self.rng.random()
        if r < 0.25 or not self.ids:
            rid = self.next_id
            self.next_id += 1
            conn.execute(sql.SQL("INSERT INTO {} (id, embedding, title, lang, year, body) "
                                 "VALUES (%s, %s, %s, %s, %s, %s)").format(t),
                         (rid, self._vector(), f"live {rid}", "en", 2024, f"inserted live {rid}"))
            self.ids.append(rid)
            self.ops["insert"] += 1
        elif r < 0.75:
            rid = self.rng.choice(self.ids)
            if self.rng.random() < 0.5:
                conn.execute(sql.SQL("UPDATE {} SET embedding = %s WHERE id = %s").format(t), (self._vector(), rid))
            else:
                conn.execute(sql.SQL("UPDATE {} SET lang = %s, year = %s, score = %s, tags = %s, body = %s "
                                     "WHERE id = %s").format(t),
                             (self.rng.choice(("en", "de", None)), self.rng.randint(1990, 2030), self.rng.random(),
                              ["live", str(self.rng.randint(0, 9))], f"edited {self.rng.random()}", rid))
            self.ops["update"] += 1
        else:
            rid = self.ids.pop(self.rng.randrange(len(self.ids)))
            conn.execute(sql.SQL("DELETE FROM {} WHERE id = %s").format(t), (rid,))
            self.ops["delete"] += 1
