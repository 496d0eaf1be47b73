"""The README's "Use it from ..." snippets, run as written against live servers (only the URL changes)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

from clients.client_env import KEY, langchain_urls

README = Path(__file__).parents[2] / "README.md"
SECTION = "## Use it from LangChain / LlamaIndex / Haystack / OpenAI SDK"
README_URL = "http://127.0.0.1:8000"


def snippets() -> dict[str, str]:
    """``{client: code}`` from the section's ``### client`` headings and their python blocks."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    section = (
        section[: section.find("\n## ", len(SECTION))] if "\n## " in section[len(SECTION) :] else section
    )
    found = {}
    for heading, body in re.findall(r"^### (.+?)\n(.*?)(?=^### |\Z)", section, re.M | re.S):
        block = re.search(r"```python\n(.*?)```", body, re.S)
        if block:
            found[heading.strip()] = block.group(1)
    return found


SNIPPETS = snippets()


def test_the_section_covers_every_client():
    assert set(SNIPPETS) == {"LangChain", "LlamaIndex", "Haystack", "OpenAI SDK"}
    assert all(README_URL in code and KEY in code for code in SNIPPETS.values())


def run_snippet(name: str, url: str, key: str = KEY) -> dict:
    code = SNIPPETS[name].replace(README_URL, url).replace(KEY, key)
    namespace: dict = {"__name__": f"readme_{name}"}
    with langchain_urls(), warnings.catch_warnings():  # the LangChain snippet sets the URL constants
        warnings.simplefilter("ignore")
        exec(compile(code, f"README.md ({name})", "exec"), namespace)
    return namespace


def top_text(name: str, ranked) -> str:
    first = ranked[0]
    if name == "LangChain":
        return ["Berlin", "Eiffel"][first["index"]]
    return first.node.text if name == "LlamaIndex" else first.content


@pytest.mark.parametrize("server", ["keyless", "keyed"])
@pytest.mark.parametrize("name", sorted(SNIPPETS))
def test_snippet_runs_against_a_live_server(servers, name, server, capsys):
    ns = run_snippet(name, servers[server])
    vectors = ns["vectors"] if name != "Haystack" else [d.embedding for d in ns["embedded"]]
    assert len(vectors) == 2 and all(len(v) == 384 for v in vectors)
    if name == "OpenAI SDK":
        assert len(ns["passages"].data[0].embedding) == 384
        assert capsys.readouterr().out.split()[:2] == ["2", "384"]
        return
    assert len(ns["query_vector"]) == 384
    assert "Eiffel" in top_text(name, ns["ranked"])
    assert len(ns["ranked"]) == 2


@pytest.mark.parametrize("name", sorted(SNIPPETS))
def test_snippet_with_a_wrong_key_is_refused(servers, name):
    with pytest.raises(Exception, match=r"(?i)api key|401|auth"):
        run_snippet(name, servers["keyed"], key="wrong-key")
