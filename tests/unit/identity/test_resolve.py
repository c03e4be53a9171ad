"""The resolver on small hand-made cases, each a situation the contract names."""

from __future__ import annotations

from typing import Any

import pandas as pd

from reconciler.identity.resolve import IdentityResolver, Resolution, identity_frame


def rec(ref: str, **fields: Any) -> dict[str, Any]:
    return {"ref": ref, **fields}


def resolve(*records: dict[str, Any], previous: dict[str, str] | None = None) -> Resolution:
    return IdentityResolver().resolve(identity_frame(records), previous)


def same(res: Resolution, *refs: str) -> bool:
    return len({res.person_of[r] for r in refs}) == 1


IMRAN = {"nationality": "PAK", "date_of_birth": "1990-01-01", "sex": "M"}


def test_passport_links_a_registry_record_kept_on_the_passport_alone() -> None:
    res = resolve(
        rec("contributors:K102", passport_number="AB6620418", name_en="Muhammad Imran Khan",
            **IMRAN),
        rec("contracts:C2", residence_id="2517730046", passport_number="AB6620418",
            name_en="Mohammed Imran Khan", employer_id="7000000025", **IMRAN),
        rec("payroll:P2", residence_id="2517730046", name_en="MUHAMMAD IMRAN KHAN",
            employer_id="7000000025"),
    )
    assert same(res, "contributors:K102", "contracts:C2", "payroll:P2")
    person = res.persons[res.person_of["payroll:P2"]]
    assert person.confidence >= 0.99 and not person.doubts


def test_look_alikes_with_different_residence_ids_stay_apart() -> None:
    # Same name, same 1 January birth date, same nationality: two people, because each
    # carries its own valid residence ID.
    common = {"name_en": "Mohammed Ali", "nationality": "PAK", "date_of_birth": "1990-01-01",
              "sex": "M"}
    res = resolve(rec("contributors:K1", residence_id="2398145710", **common),
                  rec("contracts:C1", residence_id="2398145710", **common),
                  rec("contracts:C2", residence_id="2517730046", **common))
    assert same(res, "contributors:K1", "contracts:C1")
    assert not same(res, "contracts:C1", "contracts:C2")


def test_border_number_and_residence_id_join_through_the_permit() -> None:
    person = {"name_en": "Md Hossain Uddin", "nationality": "BGD",
              "date_of_birth": "1992-05-17", "sex": "M"}
    res = resolve(rec("payroll:P1", border_number="3000000004", name_en="MD. HOSSAIN UDDIN",
                      employer_id="7000000017"),
                  rec("permits:2735590867", residence_id="2735590867",
                      border_number="3000000004", **person),
                  rec("contracts:C9", residence_id="2735590867",
                      name_en="Mohammed Hussain Uddeen", nationality="BGD",
                      date_of_birth="1992-05-17"))
    assert same(res, "payroll:P1", "permits:2735590867", "contracts:C9")


def test_a_mistyped_identifier_is_never_a_key_but_the_name_still_links() -> None:
    # 2398145711 fails the Luhn check; the row still joins its person on name, birth date
    # and nationality — and the bad number does not conflict with the good one.
    person = {"name_en": "Suresh Kumar Nair", "nationality": "IND", "date_of_birth": "1987-03-14"}
    res = resolve(rec("contracts:C1", residence_id="2398145710", **person),
                  rec("contracts:C2", residence_id="2398145711", invalid_ids="residence_id",
                      **person))
    assert same(res, "contracts:C1", "contracts:C2")


def test_renewed_passport_links_on_name_and_birth_date() -> None:
    person = {"name_en": "Maria Grace Dela Cruz", "nationality": "PHL",
              "date_of_birth": "1995-06-21", "sex": "F"}
    res = resolve(rec("contributors:K7", passport_number="P1111111", **person),
                  rec("contracts:C7", residence_id="2735590867", passport_number="P4410932",
                      **{**person, "name_en": "Maria Grace De La Cruz"}))
    assert same(res, "contributors:K7", "contracts:C7")


def test_a_default_birth_date_alone_is_not_enough_to_merge() -> None:
    # No identifiers in common, only a common name and 1 January: a doubt, not a link.
    common = {"name_en": "Mohammed Ali", "nationality": "PAK", "date_of_birth": "1990-01-01"}
    res = resolve(rec("contributors:K1", passport_number="AA1111111", **common),
                  rec("contracts:C1", residence_id="2517730046", passport_number="BB2222222",
                      **common))
    assert not same(res, "contributors:K1", "contracts:C1")
    assert res.persons[res.person_of["contracts:C1"]].doubts


def test_two_registry_records_of_one_person_resolve_together() -> None:
    person = {"name_en": "Abdulaziz Saleh Alharbi", "nationality": "SAU",
              "date_of_birth": "1979-11-02", "sex": "M"}
    res = resolve(rec("contributors:K1", national_id="1045521182", **person),
                  rec("contributors:K2", national_id="1045521182",
                      **{**person, "name_en": "Abdulaziz Bin Saleh Al-Harbi"}))
    assert same(res, "contributors:K1", "contributors:K2")


def test_person_ids_are_stable_across_runs_and_follow_the_majority() -> None:
    records = [rec("contracts:C1", residence_id="2398145710", name_en="A B"),
               rec("payroll:P1", residence_id="2398145710", name_en="A B")]
    first = resolve(*records)
    again = IdentityResolver().resolve(pd.DataFrame(records), first.person_of)
    fresh = resolve(*records)
    assert again.person_of == first.person_of == fresh.person_of
    renamed = resolve(*records, previous={"contracts:C1": "PKEEP", "payroll:P1": "PKEEP"})
    assert set(renamed.person_of.values()) == {"PKEEP"}


def test_a_common_name_counts_for_less_than_a_rare_one() -> None:
    # Ten different "Mohammed Ali"s (each with his own residence ID) make the name common;
    # the pair we watch has no identifier in common, only name, birth date and nationality.
    crowd = [rec(f"contributors:K{n}", residence_id=rid, name_en="Mohammed Ali",
                 nationality="PAK", date_of_birth=f"19{70 + n}-03-0{1 + n % 9}")
             for n, rid in enumerate(["2398145710", "2517730046", "2735590867", "2000000008",
                                      "2000000016", "2000000024", "2000000032", "2000000040",
                                      "2000000057", "2000000065"])]
    pair = {"nationality": "PAK", "date_of_birth": "1988-07-19", "sex": "M"}
    common = resolve(*crowd, rec("contracts:A1", passport_number="AA1111111",
                                 name_en="Mohammed Ali", **pair),
                     rec("payroll:A2", passport_number="AA1111112", name_en="Muhammad Ali",
                         **pair))
    rare = resolve(*crowd, rec("contracts:B1", passport_number="AA1111111",
                               name_en="Zubair Haqqani", **pair),
                   rec("payroll:B2", passport_number="AA1111112", name_en="Zubair Haqqani",
                       **pair))

    def name_weight(res: Resolution, ref: str) -> float:
        person = res.persons[res.person_of[ref]]
        [link] = [lk for lk in person.links + person.doubts if ref in (lk.ref_a, lk.ref_b)]
        return sum(w for k, w in link.weights.items() if k.startswith("name"))

    assert name_weight(common, "contracts:A1") < name_weight(rare, "contracts:B1")


def test_a_link_explains_itself_in_words() -> None:
    res = resolve(
        rec("contributors:K102", passport_number="AB6620418", name_en="Muhammad Imran Khan",
            **IMRAN),
        rec("contracts:C2", residence_id="2517730046", passport_number="AB6620418",
            name_en="Mohammed Imran Khan", employer_id="7000000025", **IMRAN))
    [link] = res.persons[res.person_of["contracts:C2"]].links
    text = link.explain()
    assert any(line.startswith("Passport same:") and "times likelier" in line for line in text)
    assert text[-1].startswith("Together:") and "probability" in text[-1]
