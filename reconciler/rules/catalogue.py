"""Load and validate the sign catalogue (``config/rules.yaml``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reconciler.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sign(_Strict):
    check: str
    version: int = Field(ge=1)
    severity: Literal["high", "medium", "low"]
    action: Literal["review", "notify", "auto_register"]
    params: dict[str, Any] = Field(default_factory=dict)
    description: str
    sla_days: int = Field(default=30, gt=0, description="days an officer has to decide")

    def describe(self) -> str:
        values = {**self.params}
        if "tolerance" in values:
            values["tolerance_pct"] = round(float(values["tolerance"]) * 100, 2)
        try:
            return self.description.format(**values)
        except (KeyError, IndexError):
            return self.description


class Precedence(_Strict):
    at_working_employer: list[str] = Field(default_factory=list)
    at_registered_employer: list[str] = Field(default_factory=list)
    same_employer: list[str] = Field(default_factory=list)


class AutoRegistration(_Strict):
    min_sources: int = Field(default=2, ge=2)


class Catalogue(_Strict):
    version: int
    signs: dict[str, Sign]
    precedence: dict[str, Precedence] = Field(default_factory=dict)
    auto_registration: AutoRegistration = AutoRegistration()

    def sla_days(self) -> dict[str, int]:
        return {name: sign.sla_days for name, sign in self.signs.items()}


def load_catalogue(path: Path) -> Catalogue:
    """Parse and validate; every problem is reported at once with its key."""
    from reconciler.rules.checks import CHECKS

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(path), ["rules file not found"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [f"not valid YAML: {exc}"]) from None
    try:
        catalogue = Catalogue.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(str(path), [
            f"{path}: {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        ]) from None
    problems = [
        f"{path}: signs.{name}.check: unknown check {sign.check!r}; known: "
        f"{', '.join(sorted(CHECKS))}"
        for name, sign in catalogue.signs.items() if sign.check not in CHECKS
    ]
    for winner, prec in catalogue.precedence.items():
        for loser in [winner, *prec.at_working_employer, *prec.at_registered_employer,
                      *prec.same_employer]:
            if loser not in catalogue.signs:
                problems.append(f"{path}: precedence.{winner}: unknown sign {loser!r}")
    if problems:
        raise ConfigError(str(path), problems)
    return catalogue
