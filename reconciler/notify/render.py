"""The digest as words: Jinja2 templates in English and Arabic (``templates/``).

Each language has a plain-text and an HTML template; the Arabic HTML is right-to-left
(``dir="rtl"``). HTML is autoescaped — names come from partner feeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES = Path(__file__).resolve().parent / "templates"

SUBJECTS = {
    "en": "Registration notice for {name} ({employer_id})",
    "ar": "إشعار التسجيل للمنشأة {name} ({employer_id})",
}


@dataclass(frozen=True)
class RenderedDigest:
    subject: str
    text: str
    html: str


def environment() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined,
                       autoescape=select_autoescape(enabled_extensions=("html",),
                                                    default_for_string=False),
                       trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def render_digest(digest: dict[str, Any], language: str,
                  env: Environment | None = None) -> RenderedDigest:
    env = env or environment()
    context = {"d": digest}
    return RenderedDigest(
        subject=SUBJECTS[language].format(name=digest["employer_name"],
                                          employer_id=digest["employer_id"]),
        text=env.get_template(f"digest.{language}.txt").render(context),
        html=env.get_template(f"digest.{language}.html").render(context))
