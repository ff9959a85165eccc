from __future__ import annotations

import pytest
from pydantic import ValidationError

from zimage.api.request import CreateImageRequest, describe_validation_error
from zimage.images.size import parse_size


def problem(body: dict) -> tuple[str, str | None]:
    with pytest.raises(ValidationError) as caught:
        CreateImageRequest.model_validate(body)
    return describe_validation_error(caught.value.errors())


def test_defaults_match_the_upstreams():
    request = CreateImageRequest.model_validate({"prompt": "a fox"})

    assert (request.size, request.seed) == ("1024*1024", -1)


def test_the_prompt_is_trimmed():
    assert CreateImageRequest.model_validate({"prompt": "  a fox\n"}).prompt == "a fox"


@pytest.mark.parametrize("size", ["256*256", "1536*1536", "256*1536", "1024*768"])
def test_sizes_inside_the_limits_pass(size):
    assert CreateImageRequest.model_validate({"prompt": "x", "size": size}).size == size


@pytest.mark.parametrize("size", ["255*256", "1537*512", "1024x1024", "1024*", "*", "1024 * 768", "0*0", "١٠٢٤*512"])
def test_sizes_outside_the_limits_say_what_was_sent(size):
    message, field = problem({"prompt": "x", "size": size})

    assert field == "size"
    assert message.startswith("size must be W*H with each side 256..1536, got ")


def test_a_leading_zero_size_is_normalised():
    assert parse_size("0512*512") == (512, 512)
    assert CreateImageRequest.model_validate({"prompt": "x", "size": "0512*0512"}).size == "512*512"


def test_a_huge_size_is_shortened_in_the_message():
    message, _ = problem({"prompt": "x", "size": "9" * 500})

    assert len(message) < 120


@pytest.mark.parametrize("seed", [-1, 0, 2_147_483_647])
def test_seeds_at_the_limits_pass(seed):
    assert CreateImageRequest.model_validate({"prompt": "x", "seed": seed}).seed == seed


@pytest.mark.parametrize(
    ("seed", "said"), [(True, "a boolean"), (1.0, "fraction"), ("3", "a string"), (None, "NoneType"), ([1], "list")]
)
def test_seeds_that_are_not_integers_are_named(seed, said):
    message, field = problem({"prompt": "x", "seed": seed})

    assert field == "seed"
    assert said in message


def test_tab_and_newlines_are_allowed_in_prompts_but_other_controls_are_not():
    assert CreateImageRequest.model_validate({"prompt": "a\tfox\r\nin snow"})
    message, _ = problem({"prompt": "a\x1bfox"})
    assert "control characters" in message


def test_a_prompt_of_4000_characters_passes_and_4001_does_not():
    assert CreateImageRequest.model_validate({"prompt": "x" * 4000})
    assert "got 4001" in problem({"prompt": "x" * 4001})[0]


def test_unknown_fields_list_the_known_ones():
    message, field = problem({"prompt": "x", "webhook": "https://example.com"})

    assert field == "webhook"
    assert "prompt, size, seed" in message


def test_metadata_at_its_limits_passes_unchanged():
    metadata = {f"k{n:02d}": "v" * 512 for n in range(15)} | {"A-z_0.9" + "x" * 57: ""}

    request = CreateImageRequest.model_validate({"prompt": "x", "metadata": metadata})

    assert request.metadata == metadata


@pytest.mark.parametrize(
    ("metadata", "said"),
    [
        ({f"k{n}": "v" for n in range(17)}, "at most 16 keys, got 17"),
        ({"": "v"}, "keys must be 1..64 characters"),
        ({"x" * 65: "v"}, "keys must be 1..64 characters"),
        ({"has space": "v"}, "keys must be 1..64 characters"),
        ({"k": 7}, "values must be strings, got int for 'k'"),
        ({"k": None}, "values must be strings"),
        ({"k": "v" * 513}, "at most 512 characters, got 513 for 'k'"),
        (["k", "v"], "must be an object"),
        ("k=v", "must be an object"),
    ],
)
def test_metadata_outside_its_limits_is_refused_naming_the_field(metadata, said):
    message, field = problem({"prompt": "x", "metadata": metadata})

    assert field == "metadata"
    assert said in message
