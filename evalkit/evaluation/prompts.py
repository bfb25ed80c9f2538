"""Rows to chat messages, with jinja2 templates.

A template sees ``input`` (the row's input), ``contexts`` (its passages, a list of strings),
``context`` (the passages joined by blank lines), ``row`` (the whole row as a dict, for any
column: ``{{ row["my column"] }}``) and every column of the row by name. ``input``,
``contexts``, ``context`` and ``row`` win over columns of the same name.

Templates run in jinja2's sandbox with strict undefined variables: a misspelt name is an error
naming it, never an empty string sent to a paid model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

from evalkit.errors import InvalidArgument

DEFAULT_RAG_SYSTEM = (
    "You answer questions using only the context passages provided with each question. "
    "Answer concisely, in a short phrase or one sentence. If the context does not contain the "
    "answer, reply exactly: I don't know."
)
# "Context:" and "Question:" start their lines: the offline model and test servers parse them.
DEFAULT_RAG_TEMPLATE = (
    "Context:\n"
    "{% for passage in contexts %}[{{ loop.index }}] {{ passage }}\n\n"
    "{% else %}(no passages)\n\n"
    "{% endfor %}"
    "Question: {{ input }}"
)
DEFAULT_QA_SYSTEM = (
    "Answer the question concisely, in a short phrase or one sentence. If you do not know the "
    "answer, reply exactly: I don't know."
)
DEFAULT_QA_TEMPLATE = "Question: {{ input }}"

_RESERVED = ("input", "contexts", "context", "row")
_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)


@dataclass(frozen=True)
class PromptTemplate:
    """A system message (optional) and a user message, both jinja2 templates.

    Compiled when created, so a syntax error shows at once, with its line.
    """

    system: str | None
    user: str
    _compiled: tuple[jinja2.Template | None, jinja2.Template] = field(init=False, repr=False, compare=False)
    # A part with no jinja2 syntax renders to the same text for every row: rendered once here,
    # since the sandboxed renderer costs tens of microseconds a row.
    _fixed: tuple[str | None, str | None] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.system is not None and not isinstance(self.system, str):
            raise InvalidArgument(f"prompt system message must be a string, got {type(self.system).__name__}")
        if not isinstance(self.user, str) or not self.user.strip():
            raise InvalidArgument(f"prompt user message must be a non-empty string, got {self.user!r}")
        compiled = (None if self.system is None else _compile(self.system, "system"), _compile(self.user, "user"))
        object.__setattr__(self, "_compiled", compiled)
        fixed = tuple(None if source is None or "{" in source else _render(template, {}, part)
                      for source, template, part in zip((self.system, self.user), compiled, ("system", "user"),
                                                         strict=True))
        object.__setattr__(self, "_fixed", fixed)

    @property
    def digest(self) -> str:
        """sha256 (first 16 hex) of the system and user templates: same digest, same prompt."""
        # JSON keeps the two parts apart: ("ab", "c") and ("a", "bc") must not collide.
        encoded = json.dumps([self.system, self.user], ensure_ascii=False)
        return hashlib.sha256(encoded.encode("utf-8")).hexdigest()[:16]

    def variables(self) -> set[str]:
        """The top-level names the templates use."""
        names: set[str] = set()
        for source in (self.system, self.user):
            if source is not None:
                names |= meta.find_undeclared_variables(_ENV.parse(source))
        return names

    def render(self, input: str, contexts: Sequence[str], row: dict[str, Any]) -> list[dict[str, str]]:
        """The chat messages for one row: ``[{"role": "system", ...}, {"role": "user", ...}]``
        (no system message when the template has none)."""
        variables = {str(name): value for name, value in row.items()}
        variables.update(input=input, contexts=list(contexts), context="\n\n".join(contexts), row=dict(row))
        system, user = self._compiled
        fixed_system, fixed_user = self._fixed
        messages = []
        if system is not None:
            messages.append({"role": "system",
                             "content": fixed_system if fixed_system is not None else _render(system, variables, "system")})
        messages.append({"role": "user",
                         "content": fixed_user if fixed_user is not None else _render(user, variables, "user")})
        return messages

    def check(self, row_example: dict[str, Any], input: str = "", contexts: Sequence[str] = ()) -> None:
        """Raise :class:`InvalidArgument` if the template uses a name the rows do not have.

        Call it with the first row before calling any model. Pass that row's ``input`` and
        ``contexts`` too to also catch errors that depend on them, such as ``contexts[3]``.
        """
        available = set(_RESERVED) | {str(name) for name in row_example}
        unknown = sorted(self.variables() - available)
        if unknown:
            raise InvalidArgument(
                f"prompt template uses undefined variable(s) {', '.join(map(repr, unknown))}; "
                f"available: {', '.join(map(repr, sorted(available)))}"
            )
        self.render(input, contexts, row_example)


def resolve_prompt(prompt: str | PromptTemplate | list[dict[str, str]] | None, has_contexts: bool) -> PromptTemplate:
    """The template for ``prompt``.

    - None: the default, a RAG prompt when ``has_contexts`` (answer from the passages, or say
      "I don't know."), a plain question prompt otherwise.
    - a string: the user message template, with no system message.
    - a list of ``{"role": ..., "content": ...}`` templates: an optional ``system`` message
      first, then one ``user`` message.
    - a :class:`PromptTemplate`: itself.
    """
    if prompt is None:
        if has_contexts:
            return PromptTemplate(system=DEFAULT_RAG_SYSTEM, user=DEFAULT_RAG_TEMPLATE)
        return PromptTemplate(system=DEFAULT_QA_SYSTEM, user=DEFAULT_QA_TEMPLATE)
    if isinstance(prompt, PromptTemplate):
        return prompt
    if isinstance(prompt, str):
        return PromptTemplate(system=None, user=prompt)
    if isinstance(prompt, list):
        return _from_messages(prompt)
    raise InvalidArgument(
        f"prompt must be a template string, a list of {{'role', 'content'}} messages or a PromptTemplate, "
        f"got {type(prompt).__name__}"
    )


def _from_messages(messages: list[Any]) -> PromptTemplate:
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            raise InvalidArgument(
                f"prompt message {i} must be a dict with exactly the keys 'role' and 'content', got {message!r}"
            )
        if message["role"] not in ("system", "user"):
            raise InvalidArgument(
                f"prompt message {i} has role {message['role']!r}; a prompt template holds an optional "
                "'system' message and one 'user' message"
            )
        if not isinstance(message["content"], str):
            raise InvalidArgument(
                f"prompt message {i} content must be a string, got {type(message['content']).__name__}"
            )
    roles = [message["role"] for message in messages]
    if roles not in (["user"], ["system", "user"]):
        raise InvalidArgument(
            f"prompt messages have roles {roles}; expected ['user'] or ['system', 'user']"
        )
    return PromptTemplate(system=messages[0]["content"] if len(messages) == 2 else None, user=messages[-1]["content"])


def _compile(source: str, part: str) -> jinja2.Template:
    try:
        return _ENV.from_string(source)
    except jinja2.TemplateSyntaxError as error:
        raise InvalidArgument(f"prompt {part} template line {error.lineno}: {error.message}") from None


def _render(template: jinja2.Template, variables: dict[str, Any], part: str) -> str:
    try:
        return template.render(variables)
    except jinja2.UndefinedError as error:
        names = ", ".join(sorted(repr(name) for name in variables if name != "row"))
        raise InvalidArgument(
            f"prompt {part} template: {error.message}; available variables: {names}, and row[...] for any column"
        ) from None
    except jinja2.exceptions.SecurityError as error:
        raise InvalidArgument(f"prompt {part} template does something the sandbox forbids: {error}") from None
