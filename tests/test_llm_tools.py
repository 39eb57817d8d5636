"""Tool calling: schemas from functions (checked against transformers' get_json_schema), the tool-call parser,
the registry's errors, the agent loop (step limit, broken calls, failing tools) and the tool chat template."""

from __future__ import annotations

from typing import Literal

import pytest

from tutorlib.llm.tools import (ToolCall, ToolCallError, ToolRegistry, answer_is_correct,
                                arithmetic_questions, calculator, chat_generator, few_shot_messages,
                                function_schema, generate_batch, parse_tool_calls, render_chat, run_agent,
                                run_agents)


def convert(value: float, unit: Literal["km", "mi"], digits: int = 2) -> float:
    """Convert a distance between kilometres and miles.

    Args:
        value: the distance to convert
        unit: the unit of ``value``
        digits: decimals to keep
    """
    return round(value * 0.621371 if unit == "km" else value / 0.621371, digits)


def test_schema_matches_transformers_get_json_schema():
    from transformers.utils import get_json_schema

    for fn in (calculator, convert):
        ours, ref = function_schema(fn), get_json_schema(fn)
        if fn is calculator:  # transformers keeps the doctest in the last argument's text; ours stops at '>>>'
            desc = ref["function"]["parameters"]["properties"]["expression"]["description"]
            ref["function"]["parameters"]["properties"]["expression"]["description"] = desc.split(" >>>")[0]
        assert ours["function"]["name"] == ref["function"]["name"]
        assert ours["function"]["description"] == ref["function"]["description"]
        assert ours["function"]["parameters"]["required"] == ref["function"]["parameters"]["required"]
        for name, prop in ref["function"]["parameters"]["properties"].items():
            assert ours["function"]["parameters"]["properties"][name] == {k: prop[k] for k in prop}


def test_schema_errors_are_clear():
    def no_doc(x: int) -> int:
        return x

    def no_hint(x):  # noqa: ANN001
        """Doc.

        Args:
            x: a value
        """

    def undocumented(x: int, y: int) -> int:
        """Adds.

        Args:
            x: a value
        """
        return x + y

    with pytest.raises(ValueError, match="no docstring"):
        function_schema(no_doc)
    with pytest.raises(TypeError, match="no type hint"):
        function_schema(no_hint)
    with pytest.raises(ValueError, match="'y' is not described"):
        function_schema(undocumented)
    reg = ToolRegistry([calculator])
    with pytest.raises(ValueError, match="already registered"):
        reg.register(calculator)


@pytest.mark.parametrize("text, expected", [
    ('<tool_call>\n{"name": "calculator", "arguments": {"expression": "2*3"}}\n</tool_call>',
     [ToolCall("calculator", {"expression": "2*3"})]),
    ('<tool_call>{"name": "calculator", "arguments": {"expression": "1+1"}}', [ToolCall("calculator", {"expression": "1+1"})]),
    ('Sure! <tool_call>[{"name": "f", "arguments": {}}]</tool_call> done', [ToolCall("f", {})]),
    ('<tool_call>{"name": "f", "arguments": "{\\"a\\": 1}"}</tool_call>', [ToolCall("f", {"a": 1})]),
    ('<tool_call>{"function": {"name": "f", "arguments": {"a": 2}}}</tool_call>', [ToolCall("f", {"a": 2})]),
    ('<tool_call>```json\n{"name": "f", "parameters": {"a": 3}}\n```</tool_call>', [ToolCall("f", {"a": 3})]),
    ('<tool_call>{"name": "f", "arguments": {}}} trailing junk', [ToolCall("f", {})]),
    ("The answer is 12.", []),
])
def test_parser_reads_calls(text, expected):
    assert parse_tool_calls(text) == expected


@pytest.mark.parametrize("text, match", [
    ("<tool_call>{'name': 'f'}</tool_call>", "not valid JSON"),
    ("<tool_call></tool_call>", "empty"),
    ('<tool_call>{"arguments": {}}</tool_call>', "no 'name'"),
    ('<tool_call>{"name": "f", "arguments": [1]}</tool_call>', "must be a JSON object"),
    ('<tool_call>"f"</tool_call>', "must be a JSON object with 'name'"),
])
def test_parser_errors_say_what_is_wrong(text, match):
    with pytest.raises(ToolCallError, match=match):
        parse_tool_calls(text)


def test_registry_validates_and_runs_tools():
    reg = ToolRegistry([calculator, convert])
    assert reg.call(ToolCall("convert", {"value": 10, "unit": "km"})) == "6.21"
    assert reg.call(ToolCall("calculator", {"expression": "(365 - 14) / 3"})) == "117"
    with pytest.raises(ToolCallError, match="unknown tool 'weather'"):
        reg.call(ToolCall("weather", {}))
    with pytest.raises(ToolCallError, match="missing argument.*expression.*unknown argument.*expr"):
        reg.call(ToolCall("calculator", {"expr": "1"}))
    with pytest.raises(ToolCallError, match="calculator failed: ValueError"):
        reg.call(ToolCall("calculator", {"expression": "__import__('os')"}))
    with pytest.raises(ToolCallError, match="ZeroDivisionError"):
        reg.call(ToolCall("calculator", {"expression": "1/0"}))


def _call(expr: str) -> str:
    return '<tool_call>{"name": "calculator", "arguments": {"expression": "%s"}}</tool_call>' % expr


def test_agent_loop_runs_the_tool_and_answers():
    seen = []

    def generate(convs):
        seen.append([list(c) for c in convs])
        return [_call("12*12") if c[-1]["role"] == "user" else f"The answer is {c[-1]['content']}." for c in convs]

    res = run_agents(generate, ToolRegistry([calculator]), ["What is 12 times 12?", "And 12 squared?"], system="Be exact.")
    assert [r.answer for r in res] == ["The answer is 144.", "The answer is 144."]
    assert all(r.valid_call and r.steps == 2 and not r.errors for r in res)
    assert seen[0][0][0] == {"role": "system", "content": "Be exact."} and len(seen) == 2
    assert [m["role"] for m in res[0].messages] == ["user", "assistant", "tool", "assistant"]


def test_agent_loop_stops_at_the_step_limit_and_reports_errors():
    reg = ToolRegistry([calculator])
    looping = run_agent(lambda convs: [_call("1+1")] * len(convs), reg, "?", max_steps=3)
    assert looping.answer is None and looping.steps == 3 and len(looping.calls) == 3
    broken = iter([["<tool_call>{bad json</tool_call>"], [_call("2+2")], ["It is 4."]])
    r = run_agent(lambda convs: next(broken), reg, "2+2?", max_steps=3)
    assert r.answer == "It is 4." and not r.valid_call and "step 1: the tool call is not valid JSON" in r.errors[0]
    assert r.messages[2]["content"].startswith("error: the tool call is not valid JSON")
    failing = iter([[_call("1/0")], ["I cannot divide by zero."]])
    r = run_agent(lambda convs: next(failing), reg, "1/0?")
    assert "ZeroDivisionError" in r.messages[2]["content"] and r.answer == "I cannot divide by zero."
    with pytest.raises(ValueError, match="max_steps"):
        run_agent(lambda convs: [], reg, "?", max_steps=0)
    with pytest.raises(ValueError, match="returned 0 replies for 1"):
        run_agent(lambda convs: [], reg, "?")


def test_questions_and_scoring():
    qs = arithmetic_questions(14, seed=3)
    assert all(eval(q["expression"]) == q["answer"] for q in qs) and len({q["question"] for q in qs}) == 14
    assert arithmetic_questions(5, seed=3) == qs[:5]
    assert answer_is_correct("The answer is 4,321.", 4321) and not answer_is_correct("I do not know", 4)
    msgs = few_shot_messages(qs[:2], use_tool=False)
    assert [m["role"] for m in msgs] == ["user", "assistant"] * 2 and msgs[1]["content"] == f"The answer is {qs[0]['answer']}."


def test_tool_template_renders_tools_calls_and_results(tmp_path):
    from tiny_llm import tiny_tokenizer

    tok = tiny_tokenizer(tmp_path)
    assert "tools" not in tok.chat_template  # the tiny ChatML template ignores tools, like SmolLM2's
    msgs = [{"role": "system", "content": "Be exact."}, *few_shot_messages(arithmetic_questions(1), use_tool=True),
            {"role": "user", "content": "What is 2 plus 2?"}]
    text = render_chat(tok, msgs, ToolRegistry([calculator]))
    assert text.startswith("<|im_start|>system\nBe exact.\n\nYou have access to these tools")
    assert '"name": "calculator"' in text and text.count("<|im_start|>system") == 1
    assert '<tool_call>\n{"name": "calculator", "arguments": {"expression": ' in text
    assert "<|im_start|>user\n<tool_response>\n" in text and text.endswith("<|im_start|>assistant\n")
    assert render_chat(tok, msgs[1:2]) == tok.apply_chat_template(msgs[1:2], tokenize=False, add_generation_prompt=True)
    own = "{% if tools %}T{% endif %}{% for m in messages %}{{ m['content'] }}{% endfor %}"
    tok.chat_template = own  # a template that knows tools is used as it is
    assert render_chat(tok, msgs[1:2], [calculator]).startswith("T")


def test_generator_on_a_tiny_llama(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tiny_llm import tiny_llm_folder

    folder = tiny_llm_folder(tmp_path / "m")
    model, tok = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    prompts, side = ["a", "a much longer prompt than the first one"], tok.padding_side
    batched = generate_batch(model, tok, prompts, max_new_tokens=5, batch_size=2)
    alone = [generate_batch(model, tok, [p], max_new_tokens=5)[0] for p in prompts]
    assert batched == alone and tok.padding_side == side  # left padding + mask: same as one at a time
    prefix = '<tool_call>\n{"name": "calculator", "arguments": {"expression": "'
    gen = chat_generator(model, tok, ToolRegistry([calculator]), max_new_tokens=4, call_prefix=prefix)
    replies = gen([[{"role": "user", "content": "1+1?"}], [{"role": "user", "content": "x"}, {"role": "tool", "content": "2"}]])
    assert replies[0].startswith(prefix) and not replies[1].startswith(prefix)
    res = run_agents(gen, ToolRegistry([calculator]), ["1+1?"], max_steps=2)
    assert res[0].steps <= 2 and res[0].errors  # random weights write a broken call; the loop reports it, no crash
    with pytest.raises(TypeError, match="list of prompts"):
        generate_batch(model, tok, "a")
