"""Reading the user's data files (tutorlib.finetune.io): formats, label kinds, and a clear error for each bad file."""

from __future__ import annotations

import json

import pytest

from tutorlib.finetune.io import (DataFileError, LabeledTexts, check_classes, detect_format, encode_labels,
                                  label_names, read_table, split_train_val)


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def test_csv_tsv_jsonl_json_read_the_same(tmp_path):
    rows = [("great food, friendly staff", "pos"), ("cold soup", "neg"), ('said "never again"\nand left', "neg")]
    csv_text = 'text,label\n"great food, friendly staff",pos\ncold soup,neg\n"said ""never again""\nand left",neg\n'
    tsv_text = 'label\ttext\npos\tgreat food, friendly staff\nneg\tcold soup\nneg\t"said ""never again""\nand left"\n'
    jsonl = "\n".join(json.dumps({"text": t, "label": y, "id": i}) for i, (t, y) in enumerate(rows)) + "\n\n"
    files = [write(tmp_path / "a.csv", csv_text), write(tmp_path / "a.tsv", tsv_text), write(tmp_path / "a.jsonl", jsonl),
             write(tmp_path / "a.json", json.dumps([{"text": t, "label": y} for t, y in rows]))]
    for f in files:
        table = read_table(f, "text", "label")
        assert table.texts == [t for t, _ in rows] and table.labels == [y for _, y in rows], f
    assert read_table(files[0]).lines == [2, 3, 4]
    assert read_table(files[2]).lines == [1, 2, 3]


def test_bom_and_utf16_and_latin1(tmp_path):
    f = write(tmp_path / "bom.csv", "\ufefftext,label\ncafé au lait,pos\nbad,neg\n")
    assert read_table(f).texts[0] == "café au lait"
    f16 = write(tmp_path / "u16.csv", "\ufefftext,label\nnaïve,pos\nbad,neg\n", encoding="utf-16")
    assert read_table(f16).texts[0] == "naïve"
    latin = write(tmp_path / "latin.csv", "text,label\nok,pos\ncaf\xe9 froid,neg\n", encoding="latin-1")
    with pytest.raises(DataFileError, match=r"line 3 .*not valid utf-8-sig \(byte 0xe9\).*--encoding latin-1"):
        read_table(latin)
    assert read_table(latin, encoding="latin-1").texts[1] == "café froid"
    with pytest.raises(DataFileError, match="unknown encoding"):
        read_table(latin, encoding="klingon")


def test_labels_as_strings_or_ints(tmp_path):
    ints_csv = write(tmp_path / "i.csv", "text,label\na,10\nb,2\nc,2\nd,0\n")
    t = read_table(ints_csv)
    assert label_names(t.labels) == ["0", "2", "10"]  # numeric order, not "0", "10", "2"
    assert encode_labels(t, check_classes(t)) == [2, 1, 1, 0]
    jsonl = write(tmp_path / "i.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": 0.0}\n{"text": "c", "label": true}\n')
    assert read_table(jsonl).labels == ["1", "0", "1"]
    words = write(tmp_path / "w.csv", "text,label\na, positive \nb,negative\n")
    assert check_classes(read_table(words)) == ["negative", "positive"]


@pytest.mark.parametrize("content,pattern", [
    ("review,stars\ngood,5\nbad,1\n", r"no text column 'text'; the columns are 'review', 'stars'.*--text-col"),
    ("Text,label\ngood,1\nbad,0\n", r"Did you mean 'Text'\?"),
    ("text;label\ngood;1\nbad;0\n", r"separated by ';'"),
    ("text,label\ngood,1\n,0\n", r"line 3: column 'text' is empty.*--skip-empty"),
    ("text,label\ngood,1\nbad,\n", r"line 3: column 'label' is empty"),
    ("text,label\ngood,1,extra\n", r"line 2 has 3 fields but the header has 2.*double quotes"),
    ("text,text\ngood,1\n", r"more than once"),
    ("text,label\n", r"no rows of data"),
    ("", r"is empty"),
    ("text,label\ngood,pos\nbad,pos\nmeh,pos\n", r"same label 'pos' \(3 rows\).*at least two classes"),
    ("text,label\na,1\nb,neg\nc,0\n", r"mixes integer labels.*first on line 3"),
])
def test_bad_csv_files_get_clear_messages(tmp_path, content, pattern):
    f = write(tmp_path / "bad.csv", content)
    with pytest.raises(DataFileError, match=pattern):
        check_classes(read_table(f, "text", "label"))


def test_label_column_missing(tmp_path):
    f = write(tmp_path / "d.csv", "text,sentiment\ngood,1\nbad,0\n")
    with pytest.raises(DataFileError, match=r"no label column 'label'.*--label-col"):
        read_table(f, "text", "label")


@pytest.mark.parametrize("content,pattern", [
    ('{"text": "a", "label": 1}\n{"text": "b", "label": 0\n', r"line 2 is not valid JSON"),
    ('{"text": "a", "label": 1}\n["b", 0]\n', r"line 2 is a JSON list"),
    ('{"text": "a", "label": 1}\n{"text": "b"}\n', r"line 2 has no 'label' key"),
    ('{"text": "a", "label": 1}\n{"text": 5, "label": 0}\n', r"line 2: column 'text' holds a int"),
    ('{"text": "a", "label": 1}\n{"text": "b", "label": 0.5}\n', r"line 2: label 0.5 .*fractional"),
    ('{"text": "a", "label": 1}\n{"text": "b", "label": [0]}\n', r"line 2: label .* is a list"),
    ('{"text": "a", "label": 1}\n{"text": "b", "label": null}\n', r"line 2: column 'label' is empty"),
])
def test_bad_jsonl_files(tmp_path, content, pattern):
    with pytest.raises(DataFileError, match=pattern):
        read_table(write(tmp_path / "bad.jsonl", content))


def test_skip_empty_and_other_errors(tmp_path):
    f = write(tmp_path / "d.csv", "text,label\ngood,1\n   ,0\nbad,\nfine,0\n")
    t = read_table(f, skip_empty=True)
    assert t.texts == ["good", "fine"] and t.skipped == [3, 4]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_table(tmp_path / "nope.csv")
    with pytest.raises(DataFileError, match="is a folder"):
        read_table(tmp_path.joinpath())
    with pytest.raises(DataFileError, match=r"suffix '\.xlsx'.*--format"):
        detect_format("data.xlsx")
    assert read_table(write(tmp_path / "d.txt", "text,label\na,1\nb,0\n"), fmt="csv").labels == ["1", "0"]
    with pytest.raises(DataFileError, match="line 3: label 'maybe' is not one of the training labels"):
        encode_labels(LabeledTexts(["a", "b"], ["yes", "maybe"], [2, 3], "v.csv"), ["no", "yes"])


def test_stratified_split():
    labels = [0] * 30 + [1] * 10 + [2]
    train, val = split_train_val(labels, 0.2, seed=0)
    assert sorted(train + val) == list(range(41)) and not set(train) & set(val)
    assert sum(labels[i] == 0 for i in val) == 6 and sum(labels[i] == 1 for i in val) == 2
    assert 40 in train  # a class with one example stays in training
    assert split_train_val(labels, 0.2, seed=0) == (train, val)
    with pytest.raises(DataFileError, match="too few rows"):
        split_train_val([0, 1], 0.2)
    with pytest.raises(ValueError, match="between 0 and 1"):
        split_train_val(labels, 1.5)
