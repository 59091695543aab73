"""Readers of data/sources.py: every file in ../shared/data, cross-checks between files, malformed input."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from reft_lightning.data.example import MathExample
from reft_lightning.data.sources import (
    DataFormatError,
    read_examples,
    read_gsm8k_jsonl,
    read_hf_dataset,
    read_records,
    read_reft_json,
    read_svamp_csv,
    read_svamp_json,
)

# Every data file of ../shared/data and the reader that owns it (read_examples(kind="auto") must agree).
SHARED_FILES = {
    "reft/gsm8k_test_set.json": read_reft_json,
    "reft/mathqa-numeric_test_set.json": read_reft_json,
    "reft/mathqa_test_set.json": read_reft_json,
    "reft/svamp_nl.json": read_reft_json,
    "reft/svamp_python_sdp.json": read_reft_json,
    "reft/svamp_test_set.json": read_reft_json,
    "gsm8k/train.jsonl": read_gsm8k_jsonl,
    "gsm8k/test.jsonl": read_gsm8k_jsonl,
    "svamp/SVAMP.json": read_svamp_json,
    "svamp/mawps-asdiv-a_svamp/train.csv": read_svamp_csv,
    "svamp/mawps-asdiv-a_svamp/dev.csv": read_svamp_csv,
}
MATHQA_FILE = "reft/mathqa_test_set.json"
SVAMP_CSV = ("svamp/mawps-asdiv-a_svamp/train.csv", "svamp/mawps-asdiv-a_svamp/dev.csv")

Shared = Callable[[str], list[MathExample]]


@pytest.fixture
def shared(read_shared) -> Shared:
    """``shared(name)``: the examples of one shared file, read with its own reader (cached)."""
    return lambda name: read_shared(name, SHARED_FILES[name])


def test_every_shared_file_is_listed(data_dir: Path, documented_counts: dict[str, int]) -> None:
    on_disk = {
        p.relative_to(data_dir).as_posix() for p in data_dir.rglob("*.*") if p.suffix not in {".txt", ".md"}
    }
    assert on_disk == set(SHARED_FILES) == set(documented_counts)


@pytest.mark.parametrize("name", sorted(SHARED_FILES))
def test_shared_file_reads_with_documented_count(
    name: str, shared: Shared, data_dir: Path, documented_counts: dict[str, int]
) -> None:
    examples = shared(name)
    assert len(examples) == documented_counts[name]
    assert len({example.id for example in examples}) == len(examples)
    for example in examples:
        assert example.question and example.question == example.question.strip()
        assert example.cot is None or (example.cot and example.cot == example.cot.strip())
    assert read_examples(data_dir / name) == examples  # auto-detection picks the same reader
    if name != MATHQA_FILE:  # numeric answers: plain numbers, no choices
        assert all(
            e.choices is None and "," not in e.answer and math.isfinite(float(e.answer)) for e in examples
        )


def test_gsm8k_test_line_0(shared: Shared) -> None:
    first = shared("gsm8k/test.jsonl")[0]
    assert (first.id, first.answer) == ("gsm8k_0", "18")
    assert first.question.startswith("Janet’s ducks lay 16 eggs per day.")
    assert first.cot == (
        "Janet sells 16 - 3 - 4 = 9 duck eggs a day.\nShe makes 9 * 2 = $18 every day at the farmer’s market."
    )


@pytest.mark.parametrize("name", ["gsm8k/train.jsonl", "gsm8k/test.jsonl"])
def test_gsm8k_annotations_gone_and_commas_removed(name: str, shared: Shared, data_dir: Path) -> None:
    examples = shared(name)
    lines = (data_dir / name).read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(examples)
    with_commas = 0
    for index, (line, example) in enumerate(zip(lines, examples)):
        raw = json.loads(line)["answer"]
        assert example.id == f"gsm8k_{index}"
        assert "<<" not in example.cot and ">>" not in example.cot and "####" not in example.cot
        final = raw[raw.index("####") + 4 :].strip()
        with_commas += "," in final
        assert float(example.answer) == float(final.replace(",", ""))
    assert with_commas > 0  # the check above covered thousands separators


def test_reft_gsm8k_test_matches_original_gsm8k(shared: Shared) -> None:
    reft, original = shared("reft/gsm8k_test_set.json"), shared("gsm8k/test.jsonl")
    assert [e.id for e in reft] == [e.id for e in original]
    assert all(float(a.answer) == float(b.answer) for a, b in zip(reft, original))
    assert all(a.question.split() == b.question.split() for a, b in zip(reft, original))


def test_mathqa_choices(shared: Shared) -> None:
    examples = shared(MATHQA_FILE)
    assert all(example.choices is not None and len(example.choices) == 5 for example in examples)
    assert all(len(example.answer) == 1 and example.answer in "abcde" for example in examples)
    first = examples[0]
    assert first.answer == "a"
    assert first.choices == ("38", "27.675", "30", "data inadequate", "none of these")
    assert first.question.endswith("\na ) 38 , b ) 27.675 , c ) 30 , d ) data inadequate , e ) none of these")
    by_line = {example.question.rsplit("\n", 1)[1]: example.choices for example in examples}
    assert by_line["['a ) 12', 'b ) 15', 'c ) 10', 'd ) 8', 'e ) 14']"] == ("12", "15", "10", "8", "14")
    assert by_line["a ) a ) 2 , b ) b ) 5 , c ) c ) 7 , d ) d ) 5 , e ) e ) 8"] == ("2", "5", "7", "5", "8")
    assert (
        by_line["a ) 50 % , b ) 60 % , c ) 70 % , d ) 75 % , e ) 78 + ( 4 / 7 ) %"][4] == "78 + ( 4 / 7 ) %"
    )
    assert not any(re.match(r"[a-e] \)", choice) for choices in by_line.values() for choice in choices)


def test_mathqa_gold_option_matches_mathqa_numeric(shared: Shared) -> None:
    multiple_choice = {e.id.split("_")[1]: e for e in shared(MATHQA_FILE)}
    numeric = {e.id.split("_")[1]: e for e in shared("reft/mathqa-numeric_test_set.json")}
    assert multiple_choice.keys() == numeric.keys()
    compared = agreeing = 0
    for key, mc in multiple_choice.items():
        assert mc.question.rsplit("\n", 1)[0] == numeric[key].question
        gold = mc.choices["abcde".index(mc.answer)]
        if re.fullmatch(r"-?[\d.]+", gold):
            compared += 1
            agreeing += abs(float(gold) - float(numeric[key].answer)) <= 1e-2
    assert compared > 900 and agreeing / compared > 0.99


def test_svamp_training_files(shared: Shared) -> None:
    natural, program = shared("reft/svamp_nl.json"), shared("reft/svamp_python_sdp.json")
    assert natural[0].id == "svamp_0" and natural[0].answer == "203.0"
    stated = [
        re.fullmatch(r"Therefore, the answer is <(-?[\d.]+)>\.", e.cot.splitlines()[-1]) for e in natural
    ]
    agree = [m is not None and abs(float(m[1]) - float(e.answer)) <= 1e-2 for m, e in zip(stated, natural)]
    assert sum(agree) > 0.99 * len(natural)
    assert all(
        e.cot.startswith('def solution():\n    """') and e.cot.endswith("return result") for e in program
    )


def test_svamp_dev_csv_equals_reft_svamp_test(shared: Shared) -> None:
    reft = {e.id: e for e in shared("reft/svamp_test_set.json")}
    for row, example in enumerate(shared("svamp/mawps-asdiv-a_svamp/dev.csv")):
        assert example.id == f"svamp_dev_{row}"
        twin = reft[f"svamp_{3138 + row}"]
        assert example.question == twin.question and float(example.answer) == float(twin.answer)


def test_svamp_csv_numbers_substituted(shared: Shared) -> None:
    first = shared(SVAMP_CSV[0])[0]
    assert first.question == (
        "Bryan took a look at his books as well . If Bryan has 56 books in each of his 9 bookshelves ,"
        " how many books does he have in total ?"
    )
    assert first.answer == "504.0"
    assert not any(re.search(r"\bnumber\d", e.question) for name in SVAMP_CSV for e in shared(name))


def test_svamp_json(shared: Shared) -> None:
    assert shared("svamp/SVAMP.json")[0] == MathExample(
        "chal-1",
        "Each pack of dvds costs 76 dollars. If there is a discount of 25 dollars on each pack"
        " How much do you have to pay to buy each pack?",
        "51.0",
    )


# ---- malformed input: every error names the file, the line or index, and the field ----

GOOD = {"question": "Ann has 3 apples and buys 2. How many?", "answer": "3 + 2 = <<3+2=5>>5\n#### 5"}
REFT = {"item_id": "gsm8k_0", "question": "Ann has 3 apples.", "answer_value": "3"}
MATHQA = {
    "item_id": "mathqa_0",
    "question": "1+1?\na ) 1 , b ) 2 , c ) 3 , d ) 4 , e ) 5",
    "answer_value": "b",
}


def raises(reader: Callable[[Path], object], path: Path, *fragments: str) -> None:
    """``reader(path)`` raises DataFormatError whose message names the file and holds every fragment."""
    with pytest.raises(DataFormatError) as info:
        reader(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_error_message_format() -> None:
    error = DataFormatError("data/x.jsonl", "not a number: 'abc'", location=":17", field="answer")
    assert str(error) == "data/x.jsonl:17: field 'answer': not a number: 'abc'"
    assert (error.source, error.location, error.field) == ("data/x.jsonl", ":17", "answer")
    assert isinstance(error, ValueError)


def test_bad_json(files) -> None:
    path = files.text("bad.jsonl", json.dumps(GOOD) + "\n\n" + '{"question": "x", "answer": \n')
    raises(read_gsm8k_jsonl, path, "bad.jsonl:3:", "invalid JSON")
    raises(read_records, path, "bad.jsonl:3:", "invalid JSON")
    bad_array = files.text("bad.json", '[\n  {"item_id": "gsm8k_0",\n   "question": }\n]')
    raises(read_reft_json, bad_array, "bad.json:3:", "invalid JSON")
    raises(read_reft_json, files.json("obj.json", {"a": 1}), "expected a JSON array")
    raises(read_reft_json, files.json("item.json", [REFT, 7]), "item.json[1]", "JSON object")
    raises(read_gsm8k_jsonl, files.jsonl("line.jsonl", GOOD, [1, 2]), "line.jsonl:2:", "JSON object")


def test_missing_field(files) -> None:
    path = files.jsonl("miss.jsonl", GOOD, {"question": "no answer here"})
    raises(read_gsm8k_jsonl, path, "miss.jsonl:2:", "field 'answer'", "missing")
    array = files.json("miss.json", [REFT, {"item_id": "gsm8k_1", "question": "q", "answer_value": None}])
    raises(read_reft_json, array, "miss.json[1]", "field 'answer_value'", "missing")
    svamp = files.json("s.json", [{"ID": "c-1", "Body": "b", "Answer": 1.0}])
    raises(read_svamp_json, svamp, "s.json[0]", "field 'Question'", "missing")
    raises(
        read_reft_json, files.json("q.json", [{**REFT, "question": " "}]), "q.json[0]", "'question'", "empty"
    )
    raises(read_reft_json, files.json("t.json", [{**REFT, "question": 5}]), "t.json[0]", "'question'", "text")


def test_non_numeric_answer(files) -> None:
    path = files.jsonl("nan.jsonl", GOOD, GOOD, {"question": "q", "answer": "steps\n#### abc"})
    raises(read_gsm8k_jsonl, path, "nan.jsonl:3:", "field 'answer'", "not a number: 'abc'")
    array = files.json("nan.json", [REFT, {**REFT, "item_id": "svamp_4", "answer_value": "1/2"}])
    raises(read_reft_json, array, "nan.json[1]", "field 'answer_value'", "not a number: '1/2'")
    raises(read_gsm8k_jsonl, files.jsonl("sep.jsonl", {"question": "q", "answer": "18"}), ":1:", "'####'")


@pytest.mark.parametrize(
    ("reader", "file_name", "text", "fragment"),
    [
        (read_gsm8k_jsonl, "e.jsonl", "", "empty file"),
        (read_gsm8k_jsonl, "blank.jsonl", "\n  \n", "empty file"),
        (read_reft_json, "e.json", "", "empty file"),
        (read_reft_json, "a.json", "[]", "no records"),
        (read_svamp_csv, "e.csv", "", "empty file"),
        (read_svamp_csv, "h.csv", "Question,Numbers,Answer\n", "no data rows"),
        (read_records, "r.json", " [ ] ", "no records"),
    ],
)
def test_empty_input(reader, file_name: str, text: str, fragment: str, files) -> None:
    raises(reader, files.text(file_name, text), fragment)


@pytest.mark.parametrize("letter", ["f", "ab", "", "2"])
def test_bad_mathqa_letter(letter: str, files) -> None:
    path = files.json("mc.json", [MATHQA, {**MATHQA, "item_id": "mathqa_1", "answer_value": letter}])
    raises(read_reft_json, path, "mc.json[1]", "field 'answer_value'")


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ("", "no options line"),
        ("\na ) 1 , b ) 2 , c ) 3", "no option 'd'"),
        ("\n1 , 2 , 3 , 4 , 5", "does not start with 'a )'"),
        ("\na ) 1 , b ) , c ) 3 , d ) 4 , e ) 5", "option 'b' is empty"),
        ("\n['a ) 1', 'b ) 2']", "expected 5 options"),
        ("\n['a ) 1', 'c ) 2', 'b ) 3', 'd ) 4', 'e ) 5']", "does not start with 'b )'"),
        ("\n['a ) 1', 'b ) 2'", "not a valid list"),
    ],
)
def test_bad_options_line(options: str, fragment: str, files) -> None:
    path = files.json("opt.json", [MATHQA, {**MATHQA, "item_id": "mathqa_1", "question": "1+1?" + options}])
    raises(read_reft_json, path, "opt.json[1]", "field 'question'", fragment)


def test_reft_format_of_ones_own_data_takes_the_answer_type_from_the_values(files) -> None:
    options = "\na ) 1 , b ) 2 , c ) 3 , d ) 4 , e ) 5"
    own = [
        {"item_id": "mydata_0", "question": "Ann has 3 apples.", "answer_value": "1,000", "answer_cot": "c"},
        {"item_id": "mydata_1", "question": "1+1?" + options, "answer_value": "B"},
        {"item_id": "q7", "question": "2+2?", "answer_value": 4.0},
    ]
    first, second, third = read_examples(files.json("mine.json", own))
    assert first == MathExample("mydata_0", "Ann has 3 apples.", "1000", "c")
    assert (second.answer, second.choices) == ("b", ("1", "2", "3", "4", "5"))
    assert (third.id, third.answer, third.choices) == ("q7", "4.0", None)
    no_options = files.json("mine2.json", [{**own[1], "question": "1+1?"}])
    raises(read_reft_json, no_options, "mine2.json[0]", "field 'question'", "'B' is a letter", "options")
    not_a_number = files.json("mine3.json", [{**own[0], "answer_value": "ten"}])
    raises(read_reft_json, not_a_number, "mine3.json[0]", "field 'answer_value'", "not a number: 'ten'")


def test_reft_shipped_prefixes_keep_their_answer_type(files) -> None:
    """A shipped dataset's id keeps its type whatever the value looks like (``mathqa_1`` answering
    ``2`` is a bad letter, ``gsm8k_1`` answering ``b`` is not a number)."""
    raises(read_reft_json, files.json("l.json", [{**REFT, "answer_value": "b"}]), "'answer_value'", "number")
    wrong_letter = files.json("m.json", [{**MATHQA, "answer_value": "2"}])
    raises(read_reft_json, wrong_letter, "m.json[0]", "field 'answer_value'", "expected one letter")


def test_reft_duplicate_ids(files) -> None:
    dup = files.json("dup.json", [REFT, {**REFT, "item_id": "svamp_1"}, REFT])
    raises(read_reft_json, dup, "dup.json[2]", "field 'item_id'", "duplicate id 'gsm8k_0'", "dup.json[0]")


def test_svamp_csv_errors_name_the_line(files) -> None:
    header = "Question,Numbers,Answer\n"
    good = '"He has number0 pens,\nand number1 more . How many ?",3.0 4.0,7.0\n'  # one field, two lines
    raises(read_svamp_csv, files.text("s.csv", header + good + "number2 ?,1 2,3\n"), "s.csv:4:", "'Numbers'")
    raises(read_svamp_csv, files.text("t.csv", header + good + "number0 ?,x,3\n"), "t.csv:4:", "not a number")
    raises(read_svamp_csv, files.text("u.csv", header + "number0 ?,2\n"), "u.csv:2:", "'Answer'", "missing")
    good_only = read_svamp_csv(files.text("v.csv", header + good))
    assert good_only == [MathExample("svamp_v_0", "He has 3 pens,\nand 4 more . How many ?", "7.0")]


def test_read_examples_dispatch(files) -> None:
    path = files.jsonl("ok.jsonl", GOOD)
    assert read_examples(path) == read_examples(path, kind="gsm8k") == read_gsm8k_jsonl(path)
    with pytest.raises(ValueError, match="unknown data kind 'parquet'"):
        read_examples(path, kind="parquet")
    raises(lambda p: read_examples(p, kind="records"), path, "ok.jsonl:1:", "field 'answer'", "not a number")
    raises(read_examples, files.text("x.txt", "hello"), "unrecognised data file")
    raises(read_examples, files.jsonl("y.jsonl", {"prompt": "p", "label": 1}), "unrecognised data file")
    raises(read_examples, files.text("z.csv", "question,answer\nq,1\n"), "unrecognised data file")
    raises(read_records, files.text("z.csv", "question,answer\nq,1\n"), ".json array or a .jsonl")


# ---- generic records and Hugging Face datasets ----

RECORDS = [
    {"uid": "p1", "problem": "  What is 2 + 3?  ", "solution": "2 + 3 = 5", "final": "5"},
    {"uid": "p2", "problem": "What is 1,000 + 500?", "solution": "sum", "final": "1,500"},
    {"uid": "p3", "problem": "Half of 5?", "solution": "5 / 2", "final": 2.5},
]
MAPPING = {"question_field": "problem", "answer_field": "final", "cot_field": "solution"}
EXPECTED = [("p1", "What is 2 + 3?", "5", "2 + 3 = 5"), ("p2", "What is 1,000 + 500?", "1500", "sum"),
            ("p3", "Half of 5?", "2.5", "5 / 2")]  # fmt: skip


def test_read_records_field_mapping(files) -> None:
    from_json = read_records(files.json("r.json", RECORDS), **MAPPING, id_field="uid")
    from_jsonl = read_records(files.jsonl("r.jsonl", *RECORDS), **MAPPING, id_field="uid")
    assert from_json == from_jsonl == [MathExample(*values) for values in EXPECTED]
    default_ids = read_records(
        files.jsonl("r.jsonl", *RECORDS), question_field="problem", answer_field="final"
    )
    assert [e.id for e in default_ids] == ["r_0", "r_1", "r_2"] and default_ids[0].cot is None
    text = read_records(files.jsonl("t.jsonl", {"question": "q", "answer": " x = 4 "}), numeric=False)
    assert text[0].answer == "x = 4"


def test_read_records_errors(files) -> None:
    path = files.jsonl("r.jsonl", *RECORDS)
    raises(lambda p: read_records(p, question_field="problem"), path, "r.jsonl:1:", "'answer'", "missing")
    raises(lambda p: read_records(p, **{**MAPPING, "cot_field": "steps"}), path, "r.jsonl:1:", "'steps'")
    by_uid = lambda p: read_records(p, **MAPPING, id_field="uid")  # noqa: E731
    raises(
        by_uid, files.jsonl("d.jsonl", *RECORDS, RECORDS[0]), "d.jsonl:4:", "duplicate id 'p1'", "d.jsonl:1"
    )
    bool_answer = files.jsonl("b.jsonl", {"question": "q", "answer": True})
    raises(read_records, bool_answer, "b.jsonl:1:", "field 'answer'", "bool")


def test_read_records_choices(files) -> None:
    rows = [
        {"question": "1 + 1 ?", "options": ["1", "2", "3"], "label": "B"},
        {"question": "2 + 2 ?", "options": "a ) 4 , b ) 5 , c ) 6 , d ) 7 , e ) 8", "label": "a"},
    ]
    mapping = {"answer_field": "label", "choices_field": "options", "numeric": False}
    examples = read_records(files.jsonl("mc.jsonl", *rows), **mapping)
    expected = [("b", ("1", "2", "3")), ("a", ("4", "5", "6", "7", "8"))]
    assert [(e.answer, e.choices) for e in examples] == expected
    with pytest.raises(ValueError, match="numeric=False"):
        read_records(files.jsonl("mc.jsonl", *rows), answer_field="label", choices_field="options")
    bad = files.jsonl("bad.jsonl", rows[0], {**rows[0], "label": "d"})
    raises(lambda p: read_records(p, **mapping), bad, "bad.jsonl:2:", "field 'label'", "'abc'")
    short = files.jsonl("short.jsonl", {**rows[0], "options": ["only one"]})
    raises(lambda p: read_records(p, **mapping), short, "short.jsonl:1:", "field 'options'")
    line = files.jsonl("line.jsonl", {**rows[1], "options": "a ) 4 , b ) 5"})
    raises(lambda p: read_records(p, **mapping), line, "line.jsonl:1:", "field 'options'", "no option 'c'")


def test_read_hf_dataset_offline(files, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    path = files.jsonl("train.jsonl", *RECORDS)
    local = {"data_files": str(path), "cache_dir": str(files.root / "cache")}
    examples = read_hf_dataset("json", "train", **MAPPING, **local)
    assert examples == [MathExample(f"json_train_{i}", *values[1:]) for i, values in enumerate(EXPECTED)]
    assert [e.id for e in read_hf_dataset("json", "train", **MAPPING, id_field="uid", **local)] == [
        "p1",
        "p2",
        "p3",
    ]
    expected_error = "json:train[0]: field 'solution': not a number: '2 + 3 = 5'"
    with pytest.raises(DataFormatError, match=re.escape(expected_error)):
        read_hf_dataset("json", "train", question_field="problem", answer_field="solution", **local)


@pytest.mark.parametrize(
    ("reader", "name", "good", "place"),
    [
        (read_gsm8k_jsonl, "latin.jsonl", json.dumps(GOOD) + "\n", "latin.jsonl:2:"),
        (read_reft_json, "latin.json", "[\n" + json.dumps(REFT) + ",\n", "latin.json:3:"),
        (read_svamp_csv, "latin.csv", "Question,Numbers,Answer\n", "latin.csv:2:"),
        (read_examples, "latin.jsonl", json.dumps(GOOD) + "\n", "latin.jsonl:2:"),
    ],
    ids=["jsonl", "json", "csv", "auto"],
)
def test_bytes_that_are_not_utf8_name_the_file_line_and_offset(
    reader, name: str, good: str, place: str, tmp_path: Path
) -> None:
    path = tmp_path / name
    path.write_bytes(good.encode() + "Caf\xe9 number0 ?".encode("latin-1"))
    offset = len(good.encode()) + 3
    raises(reader, path, place, "not UTF-8", f"byte 0xe9 at byte offset {offset}", "save the file as UTF-8")
