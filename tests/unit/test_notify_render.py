"""Digest templates (English, Arabic right-to-left) and the webhook signature."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from reconciler.notify.channels import sign, verify
from reconciler.notify.digest import mask_identifier
from reconciler.notify.render import render_digest

DIGEST: dict[str, Any] = {
    "digest_id": "d1", "employer_id": "7000000025", "employer_name": "Gulf <Catering> Co",
    "as_of": "2026-11-01", "respond_by": "2026-12-01",
    "registered": [{"finding_id": "f1", "reference": "F1", "rule": "missing_registration",
                    "severity": "high", "reasoning": "…",
                    "worker": {"name": "Maria <script>", "identifier": "••••••0867"},
                    "details": {"employment_started": "2026-08-01", "evidence_wage": 2500.0}}],
    "corrections": [{"finding_id": "f2", "reference": "F2", "rule": "wage_underdeclared",
                     "severity": "high", "reasoning": "The declared wage is too low.",
                     "worker": {"name": "Imran", "identifier": "••••••0046"},
                     "details": {"declared": 3750.0, "evidence_wage": 5000.0}}],
    "dispute": {"url": "https://portal.example/disputes", "email": None, "by": "2026-12-01"},
}


def test_english_digest_has_the_three_parts_and_escapes_html() -> None:
    out = render_digest(DIGEST, "en")
    assert out.subject == "Registration notice for Gulf <Catering> Co (7000000025)"
    assert "REGISTERED ON YOUR BEHALF" in out.text and "TO CORRECT BY 2026-12-01" in out.text
    assert "https://portal.example/disputes" in out.text
    assert "Maria &lt;script&gt;" in out.html and "<script>" not in out.html
    assert 'dir="ltr"' in out.html


def test_arabic_digest_html_is_right_to_left() -> None:
    out = render_digest(DIGEST, "ar")
    assert out.subject.startswith("إشعار التسجيل")
    assert '<html lang="ar" dir="rtl">' in out.html
    assert "مطلوب تصحيحه قبل" in out.text and "طريقة الاعتراض" in out.text
    assert "الأجر الخاضع للاشتراك المصرح به أقل من الفعلي" in out.html


def test_signature_is_hmac_sha256_of_timestamp_and_body() -> None:
    body = b'{"a":1}'
    header = sign("s3cret", 1_790_000_000, body)
    expected = hmac.new(b"s3cret", b"1790000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1790000000,v1={expected}"
    assert verify("s3cret", header, body, now=1_790_000_060)
    assert not verify("s3cret", header, body + b" ", now=1_790_000_060)  # tampered
    assert not verify("s3cret", header, body, now=1_790_001_000)  # replayed too late
    assert not verify("s3cret", "garbage", body)


def test_identifiers_are_shown_by_their_last_four_characters() -> None:
    assert mask_identifier("2735590867") == "••••••0867"
    assert mask_identifier(None) is None
