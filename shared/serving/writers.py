"""Streaming writers of prediction files: records written as batches finish, to a temporary name renamed when
complete, so an interrupted run never leaves a complete-looking output."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path


class Writer:
    """Streams records to `<dir>/.<name>.partial`; commit() renames it to the final name, abort() removes it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}.partial")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = self.tmp.open("w", newline="", encoding="utf-8")

    def write(self, records: list) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """Closing text (a JSON bracket) before the rename."""

    def commit(self) -> None:
        self.finish()
        self.handle.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.handle.close()
        self.tmp.unlink(missing_ok=True)


class JsonLinesWriter(Writer):
    def write(self, records: list) -> None:
        self.handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


class CsvWriter(Writer):
    def __init__(self, path: str | Path, columns: list[str]):
        import csv

        super().__init__(path)
        self.rows = csv.DictWriter(self.handle, fieldnames=columns)
        self.rows.writeheader()

    def write(self, records: list) -> None:
        self.rows.writerows(records)


class JsonListWriter(Writer):
    """A JSON array written one element at a time (COCO results)."""

    def __init__(self, path: str | Path):
        super().__init__(path)
        self.handle.write("[")
        self.count = 0

    def write(self, records: list) -> None:
        for record in records:
            self.handle.write(("," if self.count else "") + "\n" + json.dumps(record, ensure_ascii=False))
            self.count += 1

    def finish(self) -> None:
        self.handle.write("\n]\n")


class JsonMapWriter(Writer):
    """A JSON object written one (key, value) pair at a time (SQuAD predictions.json)."""

    def __init__(self, path: str | Path):
        super().__init__(path)
        self.handle.write("{")
        self.count = 0

    def write(self, records: list) -> None:
        for key, value in records:
            self.handle.write(("," if self.count else "") + f"\n{json.dumps(key)}: "
                              f"{json.dumps(value, ensure_ascii=False)}")
            self.count += 1

    def finish(self) -> None:
        self.handle.write("\n}\n")


class FolderWriter:
    """Files (name, PIL image) saved into `<parent>/.<name>.partial/`, renamed to the folder at the end."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}.partial")
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)

    def write(self, records: list) -> None:
        for name, image in records:
            image.save(self.tmp / name)

    def commit(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


class Writers:
    """Several outputs written and committed together (QA: predictions.json and its JSONL)."""

    def __init__(self, *writers):
        self.writers = [w for w in writers if w is not None]

    def write(self, records: list) -> None:
        raise NotImplementedError  # the format splits its records between writers itself

    def commit(self) -> None:
        for writer in self.writers:
            writer.commit()

    def abort(self) -> None:
        for writer in self.writers:
            writer.abort()
