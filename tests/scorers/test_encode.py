"""Pair rendering, the response boundary and the truncation rule (no model needed)."""

from __future__ import annotations

import pytest
from tiny_models import build_tokenizer

from rmgap_pytest.errors import ScorerError
from rmgap_pytest.scorers._encode import Encoded, common_prefix_len, encode_pairs, truncate


@pytest.fixture(scope="module")
def tok():  # type: ignore[no-untyped-def]
    return build_tokenizer()


def test_chat_template_bos_is_not_doubled(tok) -> None:  # type: ignore[no-untyped-def]
    enc = encode_pairs(tok, ["hello world"], ["hello there"], style="chat")[0]
    assert enc.ids[0] == tok.bos_token_id and enc.ids.count(tok.bos_token_id) == 1
    assert tok.decode(enc.ids) == "<s><|user|>\nhello world</s><|assistant|>\nhello there</s>"
    # The response starts right after the generation prompt and its text maps back exactly.
    assert tok.decode(enc.ids[:enc.response[0]]).endswith("<|assistant|>\n")
    assert tok.decode(enc.ids[enc.response[0]:enc.response[1]]) == "hello there"
    assert tok.decode(enc.ids[enc.prompt[0]:enc.prompt[1]]) == "hello world"


def test_template_that_trims_content_still_maps_ranges(tok) -> None:  # type: ignore[no-untyped-def]
    trimming = build_tokenizer()
    trimming.chat_template = trimming.chat_template.replace("m['content']", "m['content'] | trim")
    enc = encode_pairs(trimming, ["  hello world \n"], ["\nhello there  "], style="chat")[0]
    assert tok.decode(enc.ids[enc.prompt[0]:enc.prompt[1]]) == "hello world"
    assert tok.decode(enc.ids[enc.response[0]:enc.response[1]]) == "hello there"


def test_text_pair_ranges_and_type_ids(tok) -> None:  # type: ignore[no-untyped-def]
    enc = encode_pairs(build_tokenizer(chat=False), ["hello world"], ["hello there"], style="pair")[0]
    assert tok.decode(enc.ids[enc.prompt[0]:enc.prompt[1]]) == "hello world"
    assert tok.decode(enc.ids[enc.response[0]:enc.response[1]]) == "hello there"


def test_common_prefix_len() -> None:
    assert common_prefix_len([1, 2, 3], [1, 2, 4, 5]) == 2
    assert common_prefix_len([1, 2], [1, 2, 3]) == 2
    assert common_prefix_len([], [1]) == 0


def test_truncation_drops_prompt_start_then_response_start() -> None:
    #            bos  prompt(1..5)     hdr  response(6..9)  eos
    enc = Encoded(ids=[0, 1, 2, 3, 4, 5, 90, 6, 7, 8, 9, 99], type_ids=None, prompt=(1, 6), response=(7, 11))
    assert truncate(enc, 12) is enc
    cut = truncate(enc, 9)  # 3 prompt tokens go, from the start; BOS and header stay
    assert cut.ids == [0, 4, 5, 90, 6, 7, 8, 9, 99] and cut.truncated
    assert cut.prompt == (1, 3) and cut.response == (4, 8)
    cut = truncate(enc, 5)  # prompt gone, then the response's start; its end and the EOS stay
    assert cut.ids == [0, 90, 8, 9, 99] and cut.response == (2, 4)
    with pytest.raises(ScorerError, match=r"template's own tokens alone take 3.*max_length=4"):
        truncate(enc, 3)  # the template is never cut: its tokens and one response token need 4


def test_truncation_keeps_type_ids_aligned() -> None:
    enc = Encoded(ids=[0, 1, 2, 3, 99, 6, 7, 99], type_ids=[0, 0, 0, 0, 0, 1, 1, 1], prompt=(1, 4),
                  response=(5, 7))
    cut = truncate(enc, 6)
    assert cut.ids == [0, 3, 99, 6, 7, 99] and cut.type_ids == [0, 0, 0, 1, 1, 1]


def test_tokenizer_files_own_truncation_is_ignored(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """sentence-transformers saves tokenizer.json with truncation at 128 tokens; truncation is rmgap's rule."""
    from rmgap_pytest.scorers._encode import PairEncoder

    tok = build_tokenizer()
    tok.backend_tokenizer.enable_truncation(8)
    long = "hello world, hello there, hello again " * 5
    enc = PairEncoder.from_hf(tok, "chat").encode([long], [long])[0]
    assert len(enc.ids) > 40 and not enc.truncated


def test_a_template_without_both_turns_is_refused(tok) -> None:  # type: ignore[no-untyped-def]
    from rmgap_pytest.scorers._template import ChatTemplate

    with pytest.raises(ScorerError, match="does not write the user's message and then the assistant's"):
        ChatTemplate("{{ messages[0]['content'] }}", {})
    with pytest.raises(ScorerError, match="does not compile"):
        ChatTemplate("{% for m in messages %}", {})
