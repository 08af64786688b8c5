"""The emulator's state: in memory, durable through a journal and snapshots.

Records are plain dicts that are never changed in place: an update replaces
the record (`update` builds a new dict). That makes a snapshot of the whole
state a cheap shallow copy of each table, which a background thread can write
out while requests go on.

Durability: every change is appended to journal-<generation>.jsonl (one line,
flushed before the request returns, so it survives the process being killed).
`compact` writes state.json atomically (temporary file + rename) and starts a
new journal generation; loading reads state.json and replays the journals
from its generation on. Bulk loads skip the journal and compact at the end.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

TABLES = ("volumes", "backups", "backup_volumes", "snapshots", "meta")
INDEXED = ("backups", "snapshots")  # records with a "volume" field, indexed by it
SNAPSHOT_FILE = "state.json"
CHUNK = 2000


class Store:
    def __init__(self, state_dir: Path, compact_after: int = 100_000):
        self.lock = threading.RLock()
        self.dir = state_dir
        self.tables: dict[str, dict[str, dict]] = {name: {} for name in TABLES}
        self._by_volume: dict[str, dict[str, dict[str, None]]] = {t: defaultdict(dict) for t in INDEXED}
        # Bumped whenever a backup of the volume changes (render caches key on it).
        self.backup_revision: dict[str, int] = defaultdict(int)
        self._generation = 0
        self._journal = None
        self._journal_lines = 0
        self._compact_after = compact_after
        self._bulk = False
        self._compacting: threading.Thread | None = None
        # Told of every change (the CR mirror): .changed(table, key, old, new) and .cleared().
        self.listener = None

    # Reading -----------------------------------------------------------------
    def get(self, table: str, key: str) -> dict | None:
        return self.tables[table].get(key)

    def values(self, table: str) -> list[dict]:
        with self.lock:
            return list(self.tables[table].values())

    def keys_for_volume(self, table: str, volume: str) -> list[str]:
        with self.lock:
            return list(self._by_volume[table].get(volume, ()))

    def records_for_volume(self, table: str, volume: str) -> list[dict]:
        with self.lock:
            rows = self.tables[table]
            return [rows[key] for key in self._by_volume[table].get(volume, ())]

    # Writing -----------------------------------------------------------------
    def put(self, table: str, key: str, record: dict) -> dict:
        with self.lock:
            old = self.tables[table].get(key)
            self._index(table, key, old, record)
            self.tables[table][key] = record
            self._append(table, key, record)
            if self.listener is not None:
                self.listener.changed(table, key, old, record)
        return record

    def update(self, table: str, key: str, **changes) -> dict | None:
        with self.lock:
            old = self.tables[table].get(key)
            if old is None:
                return None
            return self.put(table, key, {**old, **changes})

    def delete(self, table: str, key: str) -> dict | None:
        with self.lock:
            old = self.tables[table].pop(key, None)
            if old is not None:
                self._index(table, key, old, None)
                self._append(table, key, None)
                if self.listener is not None:
                    self.listener.changed(table, key, old, None)
            return old

    def _index(self, table: str, key: str, old: dict | None, new: dict | None) -> None:
        if table not in INDEXED:
            return
        index = self._by_volume[table]
        if old is not None and (new is None or new["volume"] != old["volume"]):
            index[old["volume"]].pop(key, None)
            if not index[old["volume"]]:
                del index[old["volume"]]
        if new is not None:
            index[new["volume"]][key] = None
        if table == "backups":
            for record in (old, new):
                if record is not None:
                    self.backup_revision[record["volume"]] += 1

    @contextmanager
    def bulk(self):
        """Many changes without journal lines; one snapshot at the end."""
        with self.lock:
            self._bulk = True
            try:
                yield self
            finally:
                self._bulk = False
                self.compact()

    def clear(self) -> None:
        with self.lock:
            for name in TABLES:
                self.tables[name] = {}
            for name in INDEXED:
                self._by_volume[name] = defaultdict(dict)
            for volume in self.backup_revision:  # never reuse a revision a cache may hold
                self.backup_revision[volume] += 1
            if self.listener is not None:
                self.listener.cleared()

    # Journal and snapshots ---------------------------------------------------
    def _journal_path(self, generation: int) -> Path:
        return self.dir / f"journal-{generation}.jsonl"

    def _append(self, table: str, key: str, record: dict | None) -> None:
        if self._bulk or self._journal is None:
            return
        self._journal.write(json.dumps([table, key, record], separators=(",", ":")) + "\n")
        self._journal_lines += 1
        if self._journal_lines >= self._compact_after and self._compacting is None:
            self._compacting = threading.Thread(target=self.compact, name="store-compact", daemon=True)
            self._compacting.start()

    def load(self) -> None:
        """Read state.json and replay the journals; then start a fresh generation."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with self.lock:
            self.clear()
            first = 0
            path = self.dir / SNAPSHOT_FILE
            if path.exists():
                data = json.loads(path.read_text())
                first = data["journal"]
                for table, rows in data["tables"].items():
                    self.tables[table] = rows
            replayed, clean = 0, True
            for generation in sorted(self._journal_generations()):
                if generation >= first:
                    count, complete = self._replay(self._journal_path(generation))
                    replayed, clean = replayed + count, clean and complete
            for table in INDEXED:
                for key, record in self.tables[table].items():
                    self._index(table, key, None, record)
            self._generation = max([first, *self._journal_generations()])
            log.info("loaded state: %d volumes, %d backups (%d journal lines replayed)",
                     len(self.tables["volumes"]), len(self.tables["backups"]), replayed)
            if clean and path.exists():
                # Carry on appending to the newest journal: no need to rewrite a big snapshot.
                self._journal = open(self._journal_path(self._generation), "a", buffering=1, encoding="utf-8")
                self._journal_lines = replayed
            else:
                self.compact()  # also drops a line a crash cut short

    def _journal_generations(self) -> list[int]:
        result = []
        for path in self.dir.glob("journal-*.jsonl"):
            try:
                result.append(int(path.stem.split("-", 1)[1]))
            except ValueError:
                continue
        return result

    def _replay(self, path: Path) -> tuple[int, bool]:
        """Apply one journal; (lines applied, whether every line was whole)."""
        count = 0
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    table, key, record = json.loads(line)
                except ValueError:
                    return count, False  # a line cut short by a crash: everything before it counts
                if record is None:
                    self.tables[table].pop(key, None)
                else:
                    self.tables[table][key] = record
                count += 1
        return count, True

    def compact(self) -> None:
        """Write every table to state.json and start a new journal generation."""
        with self.lock:
            copies = {name: dict(rows) for name, rows in self.tables.items()}
            self._generation += 1
            generation = self._generation
            if self._journal is not None:
                self._journal.close()
            self._journal = open(self._journal_path(generation), "a", buffering=1, encoding="utf-8")
            self._journal_lines = 0
        try:
            self._write_snapshot(copies, generation)
            for old in self._journal_generations():
                if old < generation:
                    self._journal_path(old).unlink(missing_ok=True)
        finally:
            if threading.current_thread() is self._compacting:
                self._compacting = None

    def _write_snapshot(self, tables: dict[str, dict], generation: int) -> None:
        tmp = self.dir / (SNAPSHOT_FILE + ".tmp")
        with open(tmp, "w", encoding="utf-8") as out:
            out.write(f'{{"journal":{generation:d},"tables":{{')
            for t_index, (name, rows) in enumerate(tables.items()):
                out.write(("," if t_index else "") + json.dumps(name) + ":{")
                items = list(rows.items())
                for start in range(0, len(items), CHUNK):
                    # One C-encoder call per chunk keeps the GIL free between chunks.
                    text = json.dumps(dict(items[start:start + CHUNK]), separators=(",", ":"))
                    out.write(("," if start else "") + text[1:-1])
                out.write("}")
            out.write("}}\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.dir / SNAPSHOT_FILE)

    def close(self) -> None:
        with self.lock:
            if self._journal is not None:
                self._journal.close()
                self._journal = None
