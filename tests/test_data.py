import json

import pytest

from builders import make_record, mutate, write_jsonl
from rmgap_pytest.data import (DIMENSIONS, item_table, load_benchmark, pair_texts, profile_distance,
                               response_keys, sample_path)
from rmgap_pytest.errors import DataError


def test_valid_record_loads_and_keeps_extra_fields(tmp_path):
    rec = make_record()
    rec["new_field"] = {"anything": 1}
    bench = load_benchmark(write_jsonl(tmp_path / "a.jsonl", [rec]))
    (r,) = bench.records
    assert r.extra == {"source": "tests", "models": {"response1": "m1"}, "new_field": {"anything": 1}}
    assert r.winners == ("response3", "response1", "response4", "response2")
    assert r.profiles["response2"]["Conciseness"] == "verbose"  # r2 profiles response2
    assert len(bench.sha256) == 64 and bench.n_items == 12


def test_item_table_and_pairs_line_up(tmp_path):
    bench = load_benchmark(write_jsonl(tmp_path / "a.jsonl", [make_record("a"), make_record("b", "Safety")]))
    items = item_table(bench)
    prompts, responses = pair_texts(bench)
    assert len(items) == 24 and len(prompts) == len(responses) == 96
    row = items.iloc[13]  # record b, group 0, prompt 1
    assert (row.record_id, row.group, row.prompt, row.winner, row.winner_idx) == ("b", 0, 1, "response3", 2)
    assert prompts[13 * 4] == "user 0 of b, wording 1" and responses[13 * 4 + 2].startswith("answer 3 of b")
    assert row.Conciseness == "moderate"  # response3 has level indices (2, 2, 0, 4, 0)
    assert response_keys(bench)[0] == ("response1", "response2", "response3", "response4")


def _set(path, value):
    def fn(rec):
        obj = rec
        for key in path[:-1]:
            obj = obj[key]
        obj[path[-1]] = value
    return fn


def _del(key):
    return lambda rec: rec.pop(key)


BAD = {
    "unknown domain": (_set(["domain"], "Reasonning"), ["'Reasonning'", "Did you mean 'Reasoning'"]),
    "3 responses": (lambda r: r["responses"].pop(), ["exactly 4 responses, found 3"]),
    "unknown winner": (_set(["prompt_groups", 1, "winner"], "response9"), ["'response9'", "not a response key"]),
    "duplicate key": (_set(["responses", 1, "key"], "response1"), ["duplicate response key 'response1'"]),
    "empty prompt": (_set(["prompt_groups", 2, "prompts", 1, "text"], "  "), ["prompt group 3, prompt 2 is empty"]),
    "2 prompts": (lambda r: r["prompt_groups"][0]["prompts"].pop(), ["exactly 3 prompts", "found 2"]),
    "empty response": (_set(["responses", 2, "text"], ""), ["response 'response3' has empty text"]),
    "missing prompt_groups": (_del("prompt_groups"), ["'prompt_groups' is missing"]),
    "3 groups": (lambda r: r["prompt_groups"].pop(), ["exactly 4 groups, found 3"]),
    "unknown level": (_set(["style_assignments", "r2", "Formality"], "formall"), ["'formall'", "Did you mean 'formal'"]),
    "unknown dimension": (lambda r: r["style_assignments"]["r1"].update(Tone="x"), ["unknown dimension 'Tone'"]),
    "missing profile": (lambda r: r["style_assignments"].pop("r4"), ["missing 'r4'"]),
    "missing id": (_del("id"), ["no usable 'id'"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_each_rule_names_line_record_and_value(tmp_path, case):
    fn, needles = BAD[case]
    records = [make_record("ok-1"), mutate(make_record("bad-2"), fn)]
    path = write_jsonl(tmp_path / "bad.jsonl", records)
    with pytest.raises(DataError) as err:
        load_benchmark(path)
    msg = str(err.value)
    assert f"{path}, line 2" in msg
    if case != "missing id":
        assert "record 'bad-2'" in msg
    for needle in needles:
        assert needle in msg
    assert "Fix:" in msg


def test_truncated_line(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [make_record("a"), make_record("b")],
                       raw_lines={2: json.dumps(make_record("b"))[:200]})
    with pytest.raises(DataError, match=r"line 2: is not valid JSON"):
        load_benchmark(path)


def test_duplicate_record_id(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [make_record("a"), make_record("a")])
    with pytest.raises(DataError, match=r"line 2 \(record 'a'\): duplicate record id 'a' \(first seen on line 1\)"):
        load_benchmark(path)


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "e.jsonl").write_text("\n\n")
    with pytest.raises(DataError, match="holds no records"):
        load_benchmark(tmp_path / "e.jsonl")
    with pytest.raises(DataError, match="does not exist"):
        load_benchmark(tmp_path / "nope.jsonl")


def test_profiles_are_optional(tmp_path):
    rec = make_record()
    del rec["style_assignments"]
    bench = load_benchmark(write_jsonl(tmp_path / "a.jsonl", [rec]))
    assert bench.records[0].profiles is None
    assert item_table(bench)["Formality"].isna().all()


def test_embedded_sample_is_valid_and_release_like():
    bench = load_benchmark()
    assert bench.path == str(sample_path())
    assert len(bench.records) >= 24
    for domain in ("Chat", "Writing", "Reasoning", "Safety"):
        assert sum(r.domain == domain for r in bench.records) >= 6
    for rec in bench.records:
        assert sorted(rec.winners) == sorted(rec.keys)  # each user prefers a different response
        keys = rec.keys
        assert all(profile_distance(rec.profiles[a], rec.profiles[b]) >= 8
                   for i, a in enumerate(keys) for b in keys[i + 1:])
        prompts = " ".join(p.lower() for g in rec.prompts for p in g)
        for levels in DIMENSIONS.values():  # users describe situations, never style labels
            assert not any(f" {lvl} " in f" {prompts} " for lvl in levels if "_" in lvl)


def test_unicode_line_separators_inside_strings(tmp_path):
    rec = make_record("u")
    rec["responses"][0]["text"] = "line one\u2028line two\x0c\u0085 caf\u00e9"
    path = tmp_path / "u.jsonl"
    path.write_text(json.dumps(make_record("a"), ensure_ascii=False) + "\r\n" + json.dumps(rec, ensure_ascii=False)
                    + "\n", encoding="utf-8")
    bench = load_benchmark(path)
    assert [r.line for r in bench.records] == [1, 2]
    assert bench.records[1].responses[0].startswith("line one\u2028line two")


# -- identity and encodings (issue 12.5) ------------------------------------------------------------------------


def test_identity_comes_from_the_records_not_the_bytes(tmp_path):
    records = [make_record("a"), make_record("b", "Safety")]
    plain = load_benchmark(write_jsonl(tmp_path / "plain.jsonl", records))
    crlf = tmp_path / "crlf.jsonl"
    crlf.write_bytes("\r\n".join(json.dumps(r) for r in records).encode())  # no trailing newline either
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + "\n".join(json.dumps(r, indent=None, sort_keys=True) for r in records).encode())
    array = tmp_path / "array.json"
    array.write_text(json.dumps(records, indent=2, ensure_ascii=False), encoding="utf-8")
    for path in (crlf, bom, array):
        bench = load_benchmark(path)
        assert bench.sha256 == plain.sha256, path.name
        assert [r.id for r in bench.records] == ["a", "b"]
    changed = mutate(records[1], _set(["responses", 0, "text"], "another answer"))
    assert load_benchmark(write_jsonl(tmp_path / "changed.jsonl", [records[0], changed])).sha256 != plain.sha256


def test_json_array_errors_name_the_element(tmp_path):
    array = tmp_path / "array.json"
    array.write_text(json.dumps([make_record("a"), mutate(make_record("b"), _set(["domain"], "Chatt"))]))
    with pytest.raises(DataError, match=r"array.json, element 2 \(record 'b'\): unknown domain 'Chatt'"):
        load_benchmark(array)
    array.write_text('[{"id": "a",')
    with pytest.raises(DataError, match=r"not a valid JSON array.*jq -c"):
        load_benchmark(array)


HAZARDS = {
    "lone surrogate": ("\ud83d", "lone UTF-16 surrogate"),
    "NUL": ("\x00", "NUL character"),
    "BOM inside text": ("\ufeff", "byte-order mark"),
}


@pytest.mark.parametrize("case", list(HAZARDS))
def test_unencodable_text_is_refused_with_field_and_fix(tmp_path, case):
    char, needle = HAZARDS[case]
    rec = make_record("bad-2")
    rec["responses"][1]["text"] = "cut emoji " + char
    path = write_jsonl(tmp_path / "h.jsonl", [make_record("ok-1"), rec])  # json.dumps escapes it: valid JSON
    with pytest.raises(DataError) as err:
        load_benchmark(path)
    msg = str(err.value)
    assert f"{path}, line 2 (record 'bad-2'): responses[1].text (response 'response2') holds" in msg
    assert needle in msg and "Fix:" in msg


def test_hazard_in_a_prompt_names_the_prompt(tmp_path):
    rec = mutate(make_record("p"), _set(["prompt_groups", 2, "prompts", 1, "text"], "half \udc00 of it"))
    with pytest.raises(DataError, match=r"line 1 \(record 'p'\): prompt_groups\[2\]\.prompts\[1\]\.text holds a "
                                        r"lone UTF-16 surrogate"):
        load_benchmark(write_jsonl(tmp_path / "p.jsonl", [rec]))


def test_invalid_utf8_bytes_name_line_record_and_field(tmp_path):
    good, bad = json.dumps(make_record("ok")), json.dumps(make_record("latin", "Writing"))
    bad = bad.replace("answer 3 of latin", "caf\\u00e9 3 of latin")
    path = tmp_path / "latin1.jsonl"
    path.write_bytes((good + "\n").encode() + bad.encode().replace(b"\\u00e9", b"\xe9") + b"\n")
    with pytest.raises(DataError) as err:
        load_benchmark(path)
    msg = str(err.value)
    assert "line 2 (record 'latin'): responses[2].text (response 'response3') holds a byte that is not UTF-8 (0xe9)" in msg
    assert "Fix: re-export the file as UTF-8" in msg


def test_utf16_file_is_named_as_such(tmp_path):
    path = tmp_path / "u16.jsonl"
    path.write_bytes((json.dumps(make_record("a")) + "\n").encode("utf-16"))
    with pytest.raises(DataError, match=r"u16.jsonl: is UTF-16 text.*Fix: re-save it as UTF-8"):
        load_benchmark(path)
