"""Versioned prompt templates: one text file per prompt, first line `version: N`.

Placeholders use `string.Template` syntax (`$name`), so JSON braces in a prompt
need no escaping. `render` refuses a missing or an unexpected value, so a
prompt and its caller cannot drift apart silently; the version travels with
every insight so a narrative can be traced to the exact prompt that produced it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from string import Template

_VERSION_RE = re.compile(r"^version:\s*(\d+)\s*$")


@dataclass(frozen=True)
class Prompt:
    name: str
    version: str
    text: str

    @property
    def placeholders(self) -> frozenset[str]:
        return frozenset(Template(self.text).get_identifiers())

    def render(self, **values: str) -> str:
        """Fill every placeholder; missing or unknown names are a caller bug (ValueError)."""
        missing = sorted(self.placeholders - values.keys())
        extra = sorted(values.keys() - self.placeholders)
        if missing or extra:
            raise ValueError(f"prompt {self.name} v{self.version}: missing {missing}, unexpected {extra}; "
                             f"it takes exactly {sorted(self.placeholders)}")
        return Template(self.text).substitute(values)

    @property
    def tag(self) -> str:
        return f"{self.name}@{self.version}"


def parse(name: str, raw: str) -> Prompt:
    first, _, body = raw.partition("\n")
    match = _VERSION_RE.match(first)
    if not match:
        raise ValueError(f"prompts/{name}.txt: first line must be 'version: N', got {first!r}")
    template = Template(body)
    if not template.is_valid():
        raise ValueError(f"prompts/{name}.txt: invalid $placeholder syntax; write $$ for a literal dollar")
    return Prompt(name, match.group(1), body)


@cache
def load(name: str) -> Prompt:
    """Load prompts/<name>.txt from the installed package."""
    path = resources.files("prompts") / f"{name}.txt"
    if not path.is_file():
        raise ValueError(f"no prompt named {name!r}; expected prompts/{name}.txt")
    return parse(name, path.read_text(encoding="utf-8"))
