"""Read the user's labelled text files (CSV, TSV, JSONL, JSON) with errors that name the line and column.

Every problem a real file tends to have gets its own message saying what is wrong, where, and
what to do: a missing column (with the columns the file does have), an empty text or label, a
malformed line, a byte that is not valid in the encoding, only one class, labels that mix ints and
words. Labels may be strings (``positive``) or integers (``0``/``1``, as numbers in JSON or text
in CSV); integer-like labels are ordered numerically.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "reviews.csv"
>>> _ = p.write_text("text,label\\ngreat food,pos\\ncold soup,neg\\n", encoding="utf-8")
>>> table = read_table(p, "text", "label")
>>> table.texts, label_names(table.labels)
(['great food', 'cold soup'], ['neg', 'pos'])
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from torch.utils.data import Dataset

__all__ = [
    "DataFileError",
    "decode_text",
    "jsonl_objects",
    "LabeledTexts",
    "TextClassificationDataset",
    "FORMATS",
    "detect_format",
    "read_table",
    "label_names",
    "encode_labels",
    "check_classes",
    "split_train_val",
]

#: File suffixes understood by :func:`read_table`, and the format each one means.
FORMATS: dict[str, str] = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
                           ".json": "json"}

_INT = re.compile(r"^[+-]?\d+$")


class DataFileError(ValueError):
    """A data file cannot be used as it is; the message names the file, line and column, and the fix."""


@dataclass
class LabeledTexts:
    """Texts read from one file, their raw labels (strings; ``None`` without a label column) and source lines.

    >>> LabeledTexts(["a", "b"], ["x", "y"], [2, 3]).subset([1]).texts
    ['b']
    """

    texts: list[str]
    labels: list[str] | None
    lines: list[int]
    path: str = ""
    text_col: str = "text"
    label_col: str | None = "label"
    skipped: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Sequence[int]) -> "LabeledTexts":
        """The rows at ``indices``, in that order."""
        return LabeledTexts([self.texts[i] for i in indices],
                            None if self.labels is None else [self.labels[i] for i in indices],
                            [self.lines[i] for i in indices], self.path, self.text_col, self.label_col)


class TextClassificationDataset(Dataset):
    """``(text, label_id)`` items for :func:`tutorlib.data.text_collate` and the ``Trainer``.

    >>> ds = TextClassificationDataset(["good", "bad"], [1, 0]); ds[1]
    ('bad', 0)
    """

    def __init__(self, texts: Sequence[str], label_ids: Sequence[int]) -> None:
        if len(texts) != len(label_ids):
            raise ValueError(f"{len(texts)} texts but {len(label_ids)} labels: they must match")
        self.texts, self.label_ids = list(texts), [int(y) for y in label_ids]

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int) -> tuple[str, int]:
        return self.texts[i], self.label_ids[i]


def detect_format(path: str | Path, fmt: str | None = None) -> str:
    """``"csv"``, ``"tsv"``, ``"jsonl"`` or ``"json"`` from ``fmt`` or the file suffix.

    >>> detect_format("x.tsv"), detect_format("x.txt", "csv")
    ('tsv', 'csv')
    """
    if fmt is not None:
        if fmt not in set(FORMATS.values()):
            raise DataFileError(f"unknown format {fmt!r}: use one of csv, tsv, jsonl, json")
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise DataFileError(f"{path}: cannot tell the format from the suffix {suffix or '(none)'!r}: name the file "
                            f"*.csv, *.tsv, *.jsonl or *.json, or pass --format csv|tsv|jsonl|json")
    return FORMATS[suffix]


def decode_text(raw: bytes, path: Path, encoding: str) -> str:
    """``raw.decode(encoding)``, or a :class:`DataFileError` naming the line and byte that do not decode.

    >>> decode_text("café".encode("latin-1"), Path("x.csv"), "utf-8")
    Traceback (most recent call last):
    ...
    tutorlib.finetune.io.DataFileError: x.csv: line 1 (byte 3) is not valid utf-8 (byte 0xe9): save the file as UTF-8, or pass the encoding it was written in, e.g. --encoding latin-1 or --encoding cp1252
    """
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        bad = raw[exc.start: exc.start + 1].hex()
        raise DataFileError(
            f"{path}: line {line} (byte {exc.start}) is not valid {encoding} (byte 0x{bad}): save the file as UTF-8, "
            "or pass the encoding it was written in, e.g. --encoding latin-1 or --encoding cp1252"
        ) from None
    except LookupError:
        raise DataFileError(f"unknown encoding {encoding!r}: use e.g. utf-8, latin-1, cp1252, utf-16") from None


def _missing_column(path: Path, what: str, name: str, columns: Sequence[str], option: str, header: str = "") -> DataFileError:
    close = difflib.get_close_matches(name, list(columns), n=1, cutoff=0.6)
    lower = [c for c in columns if c.lower() == name.lower()]
    hint = f" Did you mean {(lower or close)[0]!r}?" if (lower or close) else ""
    sep_hint = ""
    if header and len(columns) == 1 and any(s in header for s in (";", "\t", "|")):
        sep_hint = " The header has only one column: is the file separated by ';', tabs or '|'? Save it with commas (or as .tsv)."
    shown = ", ".join(repr(c) for c in columns) or "(none)"
    return DataFileError(f"{path}: no {what} column {name!r}; the columns are {shown}.{hint} "
                         f"Pass {option} with one of them.{sep_hint}")


def _label_str(value: Any, path: Path, line: int, col: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        raise DataFileError(f"{path}: line {line}: label {value!r} in column {col!r} is a fractional number: "
                            "a classification label must be a class name or an integer class id")
    if isinstance(value, str):
        return value.strip() or None
    raise DataFileError(f"{path}: line {line}: label in column {col!r} is a {type(value).__name__} ({str(value)[:40]}): "
                        "expected a string or an integer")


def _rows_csv(text: str, path: Path, delimiter: str) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise DataFileError(f"{path} is empty: it needs a header line (e.g. text,label) and one row per example") from None
    except csv.Error as exc:
        raise DataFileError(f"{path}: line 1 cannot be parsed ({exc})") from None
    header = [h.strip() for h in header]
    dupes = [h for h, n in Counter(header).items() if n > 1 and h]
    if dupes:
        raise DataFileError(f"{path}: the header names column(s) {dupes} more than once: give every column a unique name")
    rows: list[tuple[int, dict[str, Any]]] = []
    while True:
        start = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise DataFileError(f"{path}: line {start} cannot be parsed ({exc}): check its quotes") from None
        if not fields or all(not f.strip() for f in fields):
            continue  # a blank line
        if len(fields) != len(header):
            sep = "tab" if delimiter == "\t" else repr(delimiter)
            raise DataFileError(
                f"{path}: line {start} has {len(fields)} fields but the header has {len(header)} ({', '.join(header)}): "
                f"put text that contains a {sep} or a line break in double quotes"
            )
        rows.append((start, dict(zip(header, fields))))
    return header, rows


def jsonl_objects(text: str, path: Path, example: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, object)`` for each non-blank line of JSONL ``text``; a bad line raises
    :class:`DataFileError` naming the line and showing ``example``.

    >>> list(jsonl_objects('{"a": 1}\\n\\n{"a": 2}\\n', Path("x.jsonl"), '{"a": ...}'))
    [(1, {'a': 1}), (3, {'a': 2})]
    """
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFileError(f"{path}: line {number} is not valid JSON ({exc.msg} at column {exc.colno}): "
                                f"each line must be one JSON object like {example}") from None
        if not isinstance(obj, dict):
            raise DataFileError(f"{path}: line {number} is a JSON {type(obj).__name__}, expected an object like {example}")
        yield number, obj


def _rows_jsonl(text: str, path: Path) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    rows = list(jsonl_objects(text, path, '{"text": "...", "label": "..."}'))
    keys: dict[str, None] = {}
    for _, obj in rows:
        keys.update(dict.fromkeys(obj))
    return list(keys), rows


def _rows_json(text: str, path: Path) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFileError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}): a .json file must hold a list "
                            "of objects; for one object per line name it .jsonl") from None
    if not isinstance(data, list) or not all(isinstance(o, dict) for o in data):
        raise DataFileError(f"{path}: expected a JSON list of objects like [{{\"text\": ..., \"label\": ...}}]")
    keys: dict[str, None] = {}
    for o in data:
        keys.update(dict.fromkeys(o))
    return list(keys), [(i + 1, o) for i, o in enumerate(data)]


def read_data_text(path: str | Path, fmt: str | None = None, encoding: str = "utf-8-sig") -> tuple[str, str]:
    """``(kind, text)`` of a data file: its format (csv, tsv, jsonl or json) and its decoded text.

    A missing path, a folder, an undecodable file get a clear error; a UTF-16 byte-order mark (Excel's
    "Unicode text") is honoured; a leading byte-order mark is dropped.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "d.csv"; _ = p.write_bytes("\\ufefftext\\nhé\\n".encode())
    >>> read_data_text(p)
    ('csv', 'text\\nhé\\n')
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data file {path} does not exist: check the path (relative to {Path.cwd()})")
    if path.is_dir():
        raise DataFileError(f"{path} is a folder: pass the data file inside it (a .csv, .tsv or .jsonl file)")
    kind = detect_format(path, fmt)
    raw = path.read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) and encoding.lower().replace("_", "-") in ("utf-8", "utf-8-sig", "utf8"):
        encoding = "utf-16"  # a UTF-16 byte-order mark: Excel's "Unicode text"
    return kind, decode_text(raw, path, encoding).lstrip("\ufeff")


def read_table(path: str | Path, text_col: str = "text", label_col: str | None = "label", *,
               encoding: str = "utf-8-sig", fmt: str | None = None, skip_empty: bool = False) -> LabeledTexts:
    """Read ``text_col`` (and ``label_col``, unless None) from a CSV, TSV, JSONL or JSON file.

    Rows whose text or label is empty raise a :class:`DataFileError` naming the line, unless
    ``skip_empty`` (then they are dropped and listed in ``.skipped``). JSON rows are numbered by
    line (JSONL) or by position in the list (JSON); CSV/TSV rows by the line they start on.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "d.jsonl"
    >>> _ = p.write_text('{"text": "fine", "label": 1}\\n{"text": "poor", "label": 0}\\n')
    >>> read_table(p).labels
    ['1', '0']
    """
    path = Path(path)
    kind, text = read_data_text(path, fmt, encoding)
    if not text.strip():
        raise DataFileError(f"{path} is empty: it needs a header line (e.g. text,label) and one row per example")
    if kind in ("csv", "tsv"):
        columns, rows = _rows_csv(text, path, "," if kind == "csv" else "\t")
        header_line = text.splitlines()[0]
    elif kind == "jsonl":
        columns, rows = _rows_jsonl(text, path)
        header_line = ""
    else:
        columns, rows = _rows_json(text, path)
        header_line = ""
    if not rows:
        raise DataFileError(f"{path} has no rows of data (only {'a header' if kind in ('csv', 'tsv') else 'blank lines'}): "
                            "add one example per line")
    if text_col not in columns:
        raise _missing_column(path, "text", text_col, columns, "--text-col", header_line)
    if label_col is not None and label_col not in columns:
        raise _missing_column(path, "label", label_col, columns, "--label-col", header_line)
    texts: list[str] = []
    labels: list[str] | None = [] if label_col is not None else None
    lines: list[int] = []
    skipped: list[int] = []
    for line, row in rows:
        if text_col not in row:  # JSON rows may lack keys that other rows have
            raise DataFileError(f"{path}: line {line} has no {text_col!r} key (it has {sorted(row)}): "
                                "give every object the same keys")
        value = row[text_col]
        if value is not None and not isinstance(value, str):
            raise DataFileError(f"{path}: line {line}: column {text_col!r} holds a {type(value).__name__} "
                                f"({str(value)[:40]}), expected text: is {text_col!r} the right column?")
        txt = (value or "").strip()
        lab = None
        if label_col is not None:
            if label_col not in row:
                raise DataFileError(f"{path}: line {line} has no {label_col!r} key (it has {sorted(row)}): "
                                    "give every object the same keys")
            lab = _label_str(row[label_col], path, line, label_col)
        empty = [c for c, v in ((text_col, txt), (label_col, lab)) if c is not None and not v]
        if empty:
            if skip_empty:
                skipped.append(line)
                continue
            raise DataFileError(f"{path}: line {line}: column {empty[0]!r} is empty: fill it in or delete the row "
                                "(or pass --skip-empty to drop such rows)")
        texts.append(txt)
        lines.append(line)
        if labels is not None:
            labels.append(lab)  # type: ignore[arg-type]
    if not texts:
        raise DataFileError(f"{path}: every row has an empty text or label ({len(skipped)} skipped): nothing to use")
    return LabeledTexts(texts, labels, lines, str(path), text_col, label_col, skipped)


def label_names(labels: Sequence[str]) -> list[str]:
    """The distinct labels in a stable order: numerically if they are all integers, else alphabetically.

    >>> label_names(["10", "2", "2"]), label_names(["pos", "neg"])
    (['2', '10'], ['neg', 'pos'])
    """
    distinct = set(labels)
    if distinct and all(_INT.match(x) for x in distinct):
        return sorted(distinct, key=int)
    return sorted(distinct)


def check_classes(table: LabeledTexts) -> list[str]:
    """Validate the labels of a training file and return the class names; clear errors for one class or mixed kinds.

    >>> check_classes(LabeledTexts(["a", "b"], ["x", "x"], [2, 3], "d.csv"))
    Traceback (most recent call last):
    ...
    tutorlib.finetune.io.DataFileError: d.csv: every row of column 'label' has the same label 'x' (2 rows): a classifier needs at least two classes; add examples of the other class(es)
    """
    if table.labels is None:
        raise DataFileError(f"{table.path}: no label column was read: pass --label-col")
    names = label_names(table.labels)
    if len(names) < 2:
        raise DataFileError(f"{table.path}: every row of column {table.label_col!r} has the same label {names[0]!r} "
                            f"({len(table.labels)} rows): a classifier needs at least two classes; "
                            "add examples of the other class(es)")
    ints = [n for n in names if _INT.match(n)]
    if ints and len(ints) < len(names):
        words = [n for n in names if not _INT.match(n)]
        first = table.lines[table.labels.index(words[0])]
        raise DataFileError(f"{table.path}: column {table.label_col!r} mixes integer labels ({', '.join(ints[:3])}) "
                            f"and names ({', '.join(repr(w) for w in words[:3])}, first on line {first}): "
                            "use one kind for every row")
    if len(names) > max(50, len(table.labels) // 2):
        raise DataFileError(f"{table.path}: column {table.label_col!r} has {len(names)} different labels for "
                            f"{len(table.labels)} rows: is it the text column? Pass the right --label-col")
    return names


def encode_labels(table: LabeledTexts, names: Sequence[str]) -> list[int]:
    """Class ids of ``table``'s labels in ``names``; an unknown label names its line.

    >>> encode_labels(LabeledTexts(["a", "b"], ["y", "x"], [2, 3]), ["x", "y"])
    [1, 0]
    """
    if table.labels is None:
        raise DataFileError(f"{table.path}: no label column was read: pass --label-col")
    index = {n: i for i, n in enumerate(names)}
    ids = []
    for lab, line in zip(table.labels, table.lines):
        if lab not in index:
            raise DataFileError(f"{table.path}: line {line}: label {lab!r} is not one of the training labels "
                                f"{list(names)}: fix it, or add examples of it to the training file")
        ids.append(index[lab])
    return ids


def split_train_val(label_ids: Sequence[int], val_fraction: float = 0.2, seed: int = 0) -> tuple[list[int], list[int]]:
    """Stratified split of row indices: about ``val_fraction`` of each class goes to validation.

    A class with a single example stays in training. Raises when no validation row can be made.

    >>> tr, va = split_train_val([0, 0, 0, 0, 1, 1, 1, 1, 1, 1], 0.2)
    >>> len(tr), len(va), sorted(set(va) | set(tr)) == list(range(10))
    (8, 2, True)
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}: e.g. 0.2 for 20 %")
    rng = random.Random(seed)
    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(label_ids):
        by_class.setdefault(int(y), []).append(i)
    train, val = [], []
    for _, idx in sorted(by_class.items()):
        rng.shuffle(idx)
        k = int(round(val_fraction * len(idx)))
        k = min(max(k, 1), len(idx) - 1) if len(idx) >= 2 else 0
        val += idx[:k]
        train += idx[k:]
    if not val:
        raise DataFileError(f"too few rows ({len(label_ids)}) to split off validation data: add rows, or pass "
                            "a separate validation file with --val-data")
    rng.shuffle(train)
    rng.shuffle(val)
    return train, val
