from __future__ import annotations

import re

import pytest

from evalkit.errors import InvalidArgument
from evalkit.evaluation.prompts import (
    DEFAULT_QA_TEMPLATE,
    DEFAULT_RAG_TEMPLATE,
    PromptTemplate,
    resolve_prompt,
)

ROW = {"question": "How tall is the Orla?", "topic": "specs", "lang": "en", "my col": 3}


def test_default_rag_prompt():
    template = resolve_prompt(None, has_contexts=True)
    assert template.user == DEFAULT_RAG_TEMPLATE
    passages = ["The Orla is 168 cm tall.", "The Fenn is 1.4 kg."]
    system, user = template.render("How tall is the Orla?", passages, ROW)
    assert system["role"] == "system"
    assert "context" in system["content"] and "I don't know." in system["content"]
    assert user == {
        "role": "user",
        "content": "Context:\n[1] The Orla is 168 cm tall.\n\n[2] The Fenn is 1.4 kg.\n\n"
        "Question: How tall is the Orla?",
    }
    # the markers the offline model and test servers rely on start their lines
    assert re.search(r"^Context:", user["content"], re.M) and re.search(r"^Question: ", user["content"], re.M)


def test_default_rag_prompt_without_passages():
    _, user = resolve_prompt(None, has_contexts=True).render("q?", [], {})
    assert user["content"] == "Context:\n(no passages)\n\nQuestion: q?"


def test_default_qa_prompt():
    template = resolve_prompt(None, has_contexts=False)
    assert template.user == DEFAULT_QA_TEMPLATE
    system, user = template.render("How tall is the Orla?", [], ROW)
    assert system["role"] == "system"
    assert user == {"role": "user", "content": "Question: How tall is the Orla?"}


def test_string_prompt_sees_input_contexts_and_row_variables():
    template = resolve_prompt(
        "[{{ topic }}/{{ row.lang }}/{{ row['my col'] }}] {{ input }}\n{{ context }}\n{{ contexts | length }}",
        has_contexts=True,
    )
    assert template.system is None
    messages = template.render("Q?", ["p1", "p2"], ROW)
    assert messages == [{"role": "user", "content": "[specs/en/3] Q?\np1\n\np2\n2"}]


def test_reserved_names_win_over_columns():
    template = resolve_prompt("{{ input }} {{ row.input }}", has_contexts=False)
    assert template.render("the input", [], {"input": "the column"})[0]["content"] == "the input the column"


def test_trailing_newline_is_kept():
    assert resolve_prompt("{{ input }}\n", False).render("q", [], {})[0]["content"] == "q\n"


def test_message_list_prompt():
    template = resolve_prompt(
        [{"role": "system", "content": "Be brief about {{ topic }}."}, {"role": "user", "content": "{{ input }}"}],
        has_contexts=False,
    )
    assert template.render("Q?", [], ROW) == [
        {"role": "system", "content": "Be brief about specs."},
        {"role": "user", "content": "Q?"},
    ]
    user_only = resolve_prompt([{"role": "user", "content": "{{ input }}"}], has_contexts=False)
    assert user_only.system is None


@pytest.mark.parametrize(
    ("messages", "problem"),
    [
        ([{"role": "assistant", "content": "x"}], r"message 0 has role 'assistant'"),
        ([{"role": "user"}], r"message 0 must be a dict with exactly the keys 'role' and 'content'"),
        (["hello"], r"message 0 must be a dict"),
        ([{"role": "user", "content": 5}], r"message 0 content must be a string"),
        ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], r"roles \['user', 'user'\]"),
        ([{"role": "user", "content": "a"}, {"role": "system", "content": "b"}], r"roles \['user', 'system'\]"),
        ([], r"roles \[\]"),
    ],
)
def test_bad_message_lists_name_the_problem(messages, problem):
    with pytest.raises(InvalidArgument, match=problem):
        resolve_prompt(messages, has_contexts=False)


def test_prompt_template_passes_through_and_other_types_fail():
    template = PromptTemplate(system=None, user="{{ input }}")
    assert resolve_prompt(template, has_contexts=True) is template
    with pytest.raises(InvalidArgument, match="got int"):
        resolve_prompt(3, has_contexts=False)
    with pytest.raises(InvalidArgument, match="non-empty string"):
        resolve_prompt("  ", has_contexts=False)


def test_check_names_undefined_variable_and_lists_available():
    template = resolve_prompt("{{ input }} for {{ tpoic }}", has_contexts=False)
    with pytest.raises(InvalidArgument, match=r"undefined variable\(s\) 'tpoic'; available: .*'input'.*'topic'"):
        template.check(ROW)


def test_check_catches_missing_row_key():
    template = resolve_prompt("{{ row.tpoic }}", has_contexts=False)
    with pytest.raises(InvalidArgument, match=r"'tpoic'.*available variables: .*'topic'"):
        template.check(ROW)


def test_check_with_first_row_inputs_catches_index_errors():
    template = resolve_prompt("{{ contexts[1] }}", has_contexts=True)
    template.check(ROW, input="q", contexts=["a", "b"])
    with pytest.raises(InvalidArgument, match="list object has no element 1"):
        template.check(ROW, input="q", contexts=["a"])


def test_undefined_variable_at_render_is_an_error():
    with pytest.raises(InvalidArgument, match="'nope' is undefined"):
        PromptTemplate(system="{{ nope }}", user="{{ input }}").render("q", [], {})


def test_syntax_error_names_the_line():
    with pytest.raises(InvalidArgument, match=r"user template line 2"):
        resolve_prompt("ok\n{{ input ", has_contexts=False)


def test_sandbox_refuses_unsafe_attributes():
    with pytest.raises(InvalidArgument, match="sandbox"):
        resolve_prompt("{{ input.__class__.__mro__ }}", has_contexts=False).render("q", [], {})


def test_digest():
    a = PromptTemplate(system="ab", user="c")
    assert a.digest == PromptTemplate(system="ab", user="c").digest
    assert len(a.digest) == 16
    others = {PromptTemplate(system="a", user="bc").digest, PromptTemplate(system=None, user="c").digest}
    assert len(others | {a.digest}) == 3
    assert resolve_prompt(None, True).digest != resolve_prompt(None, False).digest


def test_a_part_without_template_syntax_renders_as_jinja2_would():
    # such a part is rendered once, not per row: the text must be what jinja2 gives
    template = PromptTemplate(system="Be brief.\r\nAnswer in English.\n", user="Q: {{ input }}")
    messages = template.render("why?", [], {})
    assert messages[0]["content"] == "Be brief.\nAnswer in English.\n"
    assert messages[1]["content"] == "Q: why?"
    assert PromptTemplate(system=None, user="Just this.").render("x", [], {}) == [{"role": "user", "content": "Just this."}]
