"""plain_parse(), the import's shortcut past phonenumbers.parse(), against parse() itself.

plain_parse() must return exactly the PhoneNumber parse() returns, field by field, or None (and
then the import calls parse()). Validity, E.164 and time zones are still computed by
phonenumbers from that PhoneNumber, so agreeing here is what keeps the import's answers equal
to phonenumbers' own.
"""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneMetadata, PhoneNumber, PhoneNumberType

from store.leadrows import plain_parse

_TYPES = [t for name, t in vars(PhoneNumberType).items() if name.isupper() and name != "UNKNOWN"]
# Regions whose rules take parse() off the simple path: trunk prefixes that are captured or
# transformed (AR, BR, JP, KR, CN), optional ones (MX), country codes shared by several
# regions (US/CA/AG, GB/JE, RU/KZ), Italian leading zeros (IT), IDDs with variants (AU).
_TRICKY_REGIONS = ["US", "CA", "AG", "GB", "JE", "DE", "FR", "IT", "AR", "BR", "JP", "KR", "CN",
                   "RU", "KZ", "MX", "AU", "IN"]  # fmt: skip


def _fields(number: PhoneNumber) -> tuple[object, ...]:
    # Every field, compared strictly (PhoneNumber.__eq__ treats None and False alike).
    return (
        number.country_code,
        number.national_number,
        number.extension,
        number.italian_leading_zero,
        number.number_of_leading_zeros,
        number.raw_input,
        number.country_code_source,
        number.preferred_domestic_carrier_code,
    )


def _agrees(raw: str, region: str) -> bool:
    """plain_parse() equals parse() here (True if it answered, False if it handed over)."""
    fast = plain_parse(raw, region)
    if fast is None:
        return False
    # A number plain_parse() accepts must parse, to the very same object.
    assert _fields(fast) == _fields(phonenumbers.parse(raw, region)), (raw, region)
    return True


def _samples() -> list[tuple[str, str, str]]:
    """(country code, national significant number, region) for every region's examples."""
    out = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in _TYPES:
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                nsn = phonenumbers.national_significant_number(example)
                out.append((str(example.country_code), nsn, region))
    for code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        example = phonenumbers.example_number_for_non_geo_entity(code)
        if example is not None:
            out.append((str(code), phonenumbers.national_significant_number(example), "US"))
    return sorted(set(out))


def _written(code: str, nsn: str, trunk: str) -> list[str]:
    """A number written the ways people write numbers, plain and otherwise."""
    head, tail = nsn[:3], nsn[3:]
    return [
        f"+{code}{nsn}",
        f"+{code} {head} {tail}",
        f"+{code}-{head}-{tail}",
        f"+{code} ({head}) {tail}",
        f"+({code}) {nsn}",
        f"+{code}.{head}.{tail}",
        f"+{code} {trunk}{nsn}",
        f"+{code} ({trunk}) {nsn}",
        f"{nsn}",
        f"{trunk}{nsn}",
        f"({trunk}{head}) {tail}",
        f"{head}-{tail}",
        f"{code}{nsn}",
        f"{code} {nsn}",
        f"00{code}{nsn}",
        f"011 {code} {nsn}",
        f"+0{code}{nsn}",
        f"+{code}{nsn} x12",
        f"{nsn} ext. 7",
        f"+{code}{nsn}#",
        f"+{code} {nsn};ext=3",
        f"+{code}{nsn}ABC",
        f" +{code}{nsn}",
        f"{nsn} ",
        f"tel:+{code}{nsn}",
        f"+{code}{nsn}/x5",
        f"+{code}\u00a0{nsn}",
        "+" + (code + nsn).translate(str.maketrans("0123456789", "０１２３４５６７８９")),
        f"+{code}{nsn}{nsn}",
        f"+{code}1",
        f"({head}) {tail})",
        f"++{code}{nsn}",
    ]


def _variants(nsn: str) -> list[str]:
    # The number, and near misses: one digit short, one too many, a leading zero.
    return [nsn, nsn[:-1], nsn + "7", "0" + nsn]


def test_plain_parse_agrees_with_parse_for_every_region() -> None:
    answered = handed_over = 0
    for code, nsn, home in _samples():
        trunk = PhoneMetadata.metadata_for_region(home).national_prefix or "0"
        for variant in _variants(nsn):
            for raw in _written(code, variant, trunk):
                for region in {home, "US", "GB"}:
                    if _agrees(raw, region):
                        answered += 1
                    else:
                        handed_over += 1
    # Both paths are exercised, the shortcut for most plainly written numbers.
    assert answered > 20_000
    assert handed_over > answered


@pytest.mark.parametrize("region", _TRICKY_REGIONS)
def test_plain_parse_agrees_with_parse_in_tricky_regions(region: str) -> None:
    for code, nsn, _ in _samples():
        for raw in _written(code, nsn, "0"):
            _agrees(raw, region)


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("(201) 555-0123", "US"),
        ("201.555.0123", "US"),
        ("+1 201 555 0123", "US"),
        ("+1 (208) 555-0100", "US"),  # Idaho: two time zones, decided later, same as parse()
        ("+44 20 7946 0958", "US"),
        ("+44 7700 900123", "US"),  # parses, and is invalid: validity is phonenumbers' call
        ("+82 10-2345-6789", "GB"),
        ("+39 06 6982 0000", "US"),  # Italian leading zero
        ("06 6982 0000", "IT"),
        ("+800 1234 5678", "US"),  # non-geographic calling code
        ("+1 204 555 0123", "US"),  # Canada, under the shared +1
    ],
)
def test_common_plain_forms_take_the_shortcut(raw: str, region: str) -> None:
    assert _agrees(raw, region)


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("+1 201 555 0123 ext. 12", "US"),  # extensions
        ("+1 201-555-0123 x12", "US"),
        ("+1 212 555 0100;ext=5", "US"),
        ("tel:+1-212-555-0100", "US"),  # RFC 3966
        ("1 800 FLOWERS", "US"),  # letters
        ("＋１ ２０１ ５５５ ０１２３", "US"),  # full-width digits
        (" +44 20 7946 0958", "US"),  # blanks (the import strips them before)
        ("020 7946 0958", "GB"),  # trunk prefix
        ("+44 (0) 20 7946 0958", "US"),
        ("1-201-555-0123", "US"),  # the region's own country code without "+"
        ("011 44 20 7946 0958", "US"),  # international dialling prefix
        ("+54 9 11 1234 5678", "US"),  # Argentina's trunk prefix pattern matches anything
        ("+0 201 555 0123", "US"),  # no country code starts with 0
        ("+99 1234 5678", "US"),  # no such country code
        ("+1 201 555 0123 4567 8901 2345", "US"),  # too long for a national number
        ("201 555 0123", "us"),  # parse() does not accept a lower-case region
    ],
)
def test_other_forms_are_left_to_parse(raw: str, region: str) -> None:
    assert plain_parse(raw, region) is None


_ALPHABET = "0123456789" * 3 + " ()-.+" + "x#,;/a\u00a0\u0660"


@settings(max_examples=3_000, deadline=None)
@given(
    raw=st.text(alphabet=_ALPHABET, min_size=1, max_size=24),
    region=st.sampled_from(sorted(phonenumbers.SUPPORTED_REGIONS)),
)
def test_plain_parse_agrees_with_parse_on_any_string(raw: str, region: str) -> None:
    _agrees(raw, region)
