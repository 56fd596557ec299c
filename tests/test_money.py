"""Money: minor units, half-even rounding, largest-remainder splits, dated exchange rates.

Hand-computed cases first (each with the arithmetic in a comment), then properties checked
with hypothesis against exact fraction arithmetic.
"""

from __future__ import annotations

import pickle
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.money import (
    CurrencyError,
    DatedRate,
    FxRates,
    MissingRateError,
    corporate_dated_rates,
    from_minor,
    micros_to_decimal,
    minor_unit,
    normalize_currency,
    quantize,
    split_amount,
    split_minor,
    split_minor_grouped,
    to_decimal,
    to_minor,
)

D = Decimal

# --- currencies --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "exponent"),
    [
        ("USD", 2),
        ("eur", 2),
        (" gbp ", 2),
        ("JPY", 0),
        ("KRW", 0),
        ("CLP", 0),
        ("ISK", 0),
        ("XAF", 0),
        ("XPF", 0),
        ("BHD", 3),
        ("KWD", 3),
        ("TND", 3),
        ("CLF", 4),
        ("UYW", 4),
    ],
)
def test_minor_unit(code: str, exponent: int) -> None:
    assert minor_unit(code) == exponent


def test_normalize_currency_upper_cases() -> None:
    assert normalize_currency(" usd") == "USD"


@pytest.mark.parametrize("code", ["ABC", "US", "USDD", "U$D", "", "12A"])
def test_unknown_or_malformed_currency_is_named(code: str) -> None:
    with pytest.raises(CurrencyError) as caught:
        minor_unit(code)
    assert repr(code) in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_metal_codes_cannot_hold_money() -> None:
    with pytest.raises(CurrencyError, match="XAU"):
        minor_unit("XAU")


def test_non_string_currency() -> None:
    with pytest.raises(CurrencyError, match="string"):
        minor_unit(840)  # type: ignore[arg-type]


# --- decimals ----------------------------------------------------------------------------------


def test_to_decimal_accepts_exact_inputs() -> None:
    assert to_decimal(" 12.50 ") == D("12.50")
    assert str(to_decimal(" 12.50 ")) == "12.50"
    assert to_decimal(7) == D(7)
    assert to_decimal(np.int64(7)) == D(7)  # type: ignore[arg-type]
    assert to_decimal(D("-0.10")) == D("-0.10")


@pytest.mark.parametrize("bad", [0.1, 1.0, np.float64(2.5), float("nan")])
def test_to_decimal_refuses_floats(bad: float) -> None:
    with pytest.raises(TypeError, match="float"):
        to_decimal(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad", ["", "   ", "NaN", "nan", "Infinity", "-inf", "sNaN", "1,000", "abc"]
)
def test_to_decimal_refuses_non_amounts(bad: str) -> None:
    with pytest.raises(ValueError):
        to_decimal(bad)


def test_to_decimal_refuses_special_decimals_and_odd_types() -> None:
    with pytest.raises(ValueError, match="finite"):
        to_decimal(D("NaN"))
    with pytest.raises(ValueError, match="finite"):
        to_decimal(D("Infinity"))
    with pytest.raises(TypeError, match="bool"):
        to_decimal(True)
    with pytest.raises(TypeError):
        to_decimal(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        to_decimal(Fraction(1, 3))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("0.125", "USD", "0.12"),  # half-even: 2 is even, stays
        ("0.135", "USD", "0.14"),  # half-even: 3 is odd, goes up
        ("-0.125", "USD", "-0.12"),
        ("0.1251", "USD", "0.13"),  # above the half: up
        ("5", "USD", "5.00"),  # always the currency's exponent
        ("2.5", "JPY", "2"),
        ("3.5", "JPY", "4"),
        ("1234.5", "jpy", "1234"),
        ("1.0005", "BHD", "1.000"),
        ("1.0015", "BHD", "1.002"),
        ("1.00005", "CLF", "1.0000"),
        ("12345678901234567890123456789.125", "USD", "12345678901234567890123456789.12"),
    ],
)
def test_quantize_half_even(amount: str, currency: str, expected: str) -> None:
    result = quantize(D(amount), currency)
    assert str(result) == expected


def test_quantize_has_one_zero() -> None:
    assert str(quantize(D("-0.001"), "USD")) == "0.00"
    assert not quantize(D("-0.001"), "USD").is_signed()


def test_quantize_refuses_floats_and_bad_currency() -> None:
    with pytest.raises(TypeError, match="float"):
        quantize(0.125, "USD")  # type: ignore[arg-type]
    with pytest.raises(CurrencyError, match="ABC"):
        quantize(D("1"), "ABC")


@pytest.mark.parametrize(
    ("amount", "currency", "units"),
    [
        ("12.345", "USD", 1234),
        ("12.355", "USD", 1236),
        ("-12.345", "USD", -1234),
        ("-0.005", "USD", 0),
        ("1234.5", "JPY", 1234),
        ("1235.5", "JPY", 1236),
        ("1.2345", "BHD", 1234),
        ("1.2355", "KWD", 1236),
        ("0.00005", "CLF", 0),
    ],
)
def test_to_minor(amount: str, currency: str, units: int) -> None:
    assert to_minor(D(amount), currency) == units


def test_from_minor() -> None:
    assert str(from_minor(1234, "USD")) == "12.34"
    assert str(from_minor(-5, "USD")) == "-0.05"
    assert str(from_minor(0, "USD")) == "0.00"
    assert str(from_minor(5, "JPY")) == "5"
    assert str(from_minor(1234, "BHD")) == "1.234"
    assert str(from_minor(10**40 + 1, "USD")) == "1" + "0" * 38 + ".01"  # beyond 28 digits
    with pytest.raises(TypeError, match="float"):
        from_minor(12.0, "USD")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bool"):
        from_minor(True, "USD")


def test_micros_to_decimal() -> None:
    assert micros_to_decimal("1230000") == D("1.23")
    assert str(micros_to_decimal("1230000")) == "1.230000"
    assert micros_to_decimal("1") == D("0.000001")
    assert micros_to_decimal(2_500_000) == D("2.5")
    assert micros_to_decimal("9223372036854775807") == D("9223372036854.775807")
    assert micros_to_decimal(" -15 ") == D("-0.000015")
    for bad in ["1.5", "", "1e6", "12a", "1_000"]:
        with pytest.raises(ValueError):
            micros_to_decimal(bad)
    with pytest.raises(TypeError, match="float"):
        micros_to_decimal(1230000.0)  # type: ignore[arg-type]


# --- splits ------------------------------------------------------------------------------------


def test_split_hand_cases() -> None:
    assert split_minor(100, [1, 1, 1]) == [34, 33, 33]  # 33.33 each; the first gets the unit
    assert split_minor(-100, [1, 1, 1]) == [-34, -33, -33]
    assert split_minor(1, [1, 1]) == [1, 0]  # tie: the earlier index
    assert split_minor(2, [1, 1, 1]) == [1, 1, 0]
    assert split_minor(-1, [1, 1]) == [-1, 0]
    assert split_minor(0, [1, 2]) == [0, 0]
    # 7 over 1:2:3:4 -> 0.7, 1.4, 2.1, 2.8; floors 0,1,2,2 (5), 2 units to .8 then .7.
    assert split_minor(7, [1, 2, 3, 4]) == [1, 1, 2, 3]
    # zero weights get nothing, even when they come first
    assert split_minor(10, [0, 1, 0, 1]) == [0, 5, 0, 5]
    assert split_minor(7, [0, 1, 0, 1]) == [0, 4, 0, 3]
    assert split_minor(10, [D("0.5"), Fraction(1, 2)]) == [5, 5]


def test_split_float_credits_tie_by_position() -> None:
    # w_shaped over four campaigns: 0.05 is 1.5, 1.5, 1.5, 0.5 cents, a four-way tie of
    # remainders; the float spelling of 0.3 and 0.1 must not break it: FT and LC get the cents.
    assert split_minor(5, [0.3, 0.3, 0.3, 0.1]) == [2, 2, 1, 0]
    # 100.05: 3001.5, 3001.5, 3001.5, 1000.5 -> the two units go to the first two.
    assert split_minor(10005, [0.3, 0.3, 0.3, 0.1]) == [3002, 3002, 3001, 1000]
    # 100000 is 30000, 30000, 30000, 10000 exactly, although 0.3 * 3 + 0.1 != 1 in floats.
    assert split_minor(100000, [0.3, 0.3, 0.3, 0.1]) == [30000, 30000, 30000, 10000]
    # u_shaped, three touches: 1.00 -> 40, 40, 20
    assert split_minor(100, [0.4, 0.4, 0.2]) == [40, 40, 20]


def test_split_refuses_bad_inputs() -> None:
    with pytest.raises(ValueError, match="empty"):
        split_minor(10, [])
    with pytest.raises(ValueError, match="all zero"):
        split_minor(10, [0, 0.0])
    with pytest.raises(ValueError, match="negative"):
        split_minor(10, [1, -1])
    with pytest.raises(ValueError, match="finite"):
        split_minor(10, [1, float("nan")])
    with pytest.raises(ValueError, match="finite"):
        split_minor(10, [1, float("inf")])
    with pytest.raises(TypeError, match="float"):
        split_minor(10.0, [1])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        split_minor(D(10), [1])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        split_minor(10, ["1"])  # type: ignore[list-item]


def test_split_amount() -> None:
    assert split_amount(D("100.00"), "USD", [1, 1, 1]) == [D("33.34"), D("33.33"), D("33.33")]
    assert [str(x) for x in split_amount(D("0.125"), "USD", [1])] == ["0.12"]  # rounded first
    assert split_amount(D("1000"), "JPY", [1, 1, 1]) == [D(334), D(333), D(333)]
    assert split_amount(D("-1.000"), "BHD", [1, 2]) == [D("-0.333"), D("-0.667")]
    with pytest.raises(TypeError, match="float"):
        split_amount(100.0, "USD", [1])  # type: ignore[arg-type]


def test_split_grouped_hand_cases() -> None:
    totals = np.array([100, -100, 7, 5, 5, 10005, 9], dtype=np.int64)
    offsets = np.array([0, 3, 6, 6, 8, 12, 16, 18], dtype=np.int64)
    weights = np.array(
        [1, 1, 1, 1, 1, 1, 0.25, 0.75, 0.3, 0.3, 0.3, 0.1, 0.3, 0.3, 0.3, 0.1, 0.0, 0.0]
    )
    parts = split_minor_grouped(totals, offsets, weights)
    assert parts.dtype == np.int64
    assert parts.tolist() == [
        34, 33, 33,  # 100 over thirds
        -34, -33, -33,  # mirrored
        # the empty group (total 7) has no parts: unattributed
        1, 4,  # 1.25, 3.75
        2, 2, 1, 0,  # w_shaped tie, to the first positions
        3002, 3002, 3001, 1000,
        0, 0,  # all-zero weights: unattributed
    ]  # fmt: skip


def test_split_grouped_empty_input() -> None:
    parts = split_minor_grouped(
        np.zeros(0, dtype=np.int64), np.zeros(1, dtype=np.int64), np.zeros(0)
    )
    assert parts.shape == (0,)
    assert parts.dtype == np.int64


def test_split_grouped_refuses_bad_input() -> None:
    offsets = np.array([0, 2])
    with pytest.raises(TypeError, match="integer"):
        split_minor_grouped(np.array([10.0]), offsets, np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="finite"):
        split_minor_grouped(np.array([10]), offsets, np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match=">= 0"):
        split_minor_grouped(np.array([10]), offsets, np.array([1.0, -0.5]))
    with pytest.raises(ValueError, match="offsets"):
        split_minor_grouped(np.array([10]), np.array([0, 3]), np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="offsets"):
        split_minor_grouped(np.array([10, 1]), np.array([0, 2]), np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="non-decreasing"):
        split_minor_grouped(np.array([1, 1, 1]), np.array([0, 2, 1, 2]), np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="2\\*\\*63"):
        split_minor_grouped(np.array([np.iinfo(np.int64).min]), offsets, np.array([1.0, 1.0]))


def test_split_grouped_exact_paths_match_scalar() -> None:
    # Totals too large for float64 quotas, near-ties of dyadic weights, overflowing sums and
    # remainders on the float rounding edge all take the exact path.
    big = 2**62 + 12345
    cases: list[tuple[int, list[float]]] = [
        (big, [1.0, 1.0, 1.0]),
        (-big, [0.1, 0.2, 0.7]),
        (2**51 + 1, [1 / 3, 2 / 3]),
        (2, [0.25, 0.75]),
        (3, [1e308, 1e308, 1e308]),
        (10**15 + 7, [0.3, 0.3, 0.3, 0.1]),
        (1, [5e-324, 1.0]),
        (12345, [1.0, 1.0 + 2**-52, 1.0 - 2**-53]),
    ]
    totals = np.array([t for t, _ in cases], dtype=np.int64)
    offsets = np.cumsum([0] + [len(ws) for _, ws in cases])
    weights = np.array([x for _, ws in cases for x in ws])
    parts = split_minor_grouped(totals, offsets, weights)
    for g, (total, ws) in enumerate(cases):
        assert parts[offsets[g] : offsets[g + 1]].tolist() == split_minor(total, ws), (total, ws)


def test_split_grouped_matches_scalar_on_many_random_groups() -> None:
    rng = np.random.default_rng(20261123)
    sizes = rng.integers(0, 12, size=3000)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    n = int(offsets[-1])
    kinds = rng.integers(0, 4, size=n)
    weights = np.select(
        [kinds == 0, kinds == 1, kinds == 2],
        [rng.random(n), rng.choice([0.3, 0.1, 0.4, 0.2, 0.225, 0.1 / 7, 1 / 3], size=n), 0.0],
        default=np.exp2(-rng.random(n) * 40),
    )
    totals = rng.integers(-(10**9), 10**9, size=sizes.shape[0]) // rng.choice([1, 1000], size=3000)
    parts = split_minor_grouped(totals, offsets, weights)
    for g in range(sizes.shape[0]):
        ws = weights[offsets[g] : offsets[g + 1]].tolist()
        got = parts[offsets[g] : offsets[g + 1]].tolist()
        if not any(ws):
            assert got == [0] * len(ws)
        else:
            assert got == split_minor(int(totals[g]), ws)


# --- dated rates -------------------------------------------------------------------------------

JAN1 = date(2026, 1, 1)
FEB1 = date(2026, 2, 1)


@pytest.fixture
def eur_rates() -> FxRates:
    return FxRates(
        "usd",
        [
            DatedRate("EUR", FEB1, D("1.10")),
            DatedRate("eur", JAN1, D("1.0850")),
            DatedRate("JPY", JAN1, D("0.0067")),
        ],
    )


def test_rate_boundaries(eur_rates: FxRates) -> None:
    assert eur_rates.reporting_currency == "USD"
    assert eur_rates.rate("EUR", JAN1) == D("1.0850")  # starts exactly that day
    assert eur_rates.rate("EUR", date(2026, 1, 31)) == D("1.0850")
    assert eur_rates.rate("EUR", FEB1) == D("1.10")  # the next one takes over on its day
    assert eur_rates.rate("eur", date(2027, 6, 1)) == D("1.10")  # the latest stays in force
    assert eur_rates.rate("USD", date(1999, 1, 1)) == 1  # the reporting currency itself
    with pytest.raises(MissingRateError) as caught:
        eur_rates.rate("EUR", date(2025, 12, 31))  # the day before the first rate
    message = str(caught.value)
    assert "EUR" in message and "2025-12-31" in message
    assert "[[fx_rates]]" in message and "sync the CRM's dated rates" in message
    assert caught.value.currency == "EUR" and caught.value.on == date(2025, 12, 31)
    with pytest.raises(MissingRateError, match="GBP"):
        eur_rates.rate("gbp", FEB1)
    with pytest.raises(CurrencyError):
        eur_rates.rate("XYZ", FEB1)


def test_missing_rate_error_pickles() -> None:
    error = MissingRateError("EUR", JAN1, "USD")
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) and copy.on == JAN1
    assert isinstance(copy, LookupError)


def test_convert(eur_rates: FxRates) -> None:
    assert eur_rates.convert(D("100.00"), "EUR", JAN1) == D("108.50")
    # 0.05 EUR * 1.0850 = 0.054250 -> 0.05 (half-even at the cent)
    assert str(eur_rates.convert(D("0.05"), "EUR", JAN1)) == "0.05"
    assert str(eur_rates.convert_exact(D("0.05"), "EUR", JAN1)) == "0.054250"
    # 0.15 EUR * 1.10 = 0.165 -> 0.16 (a half-even tie)
    assert str(eur_rates.convert(D("0.15"), "EUR", FEB1)) == "0.16"
    # 15000 JPY * 0.0067 = 100.5 -> 100.50
    assert str(eur_rates.convert(15000, "JPY", FEB1)) == "100.50"
    assert str(eur_rates.convert("12.345", "USD", JAN1)) == "12.34"
    with pytest.raises(TypeError, match="float"):
        eur_rates.convert(100.0, "EUR", JAN1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="float"):
        eur_rates.convert_exact(100.0, "EUR", JAN1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="datetime"):
        eur_rates.rate("EUR", datetime(2026, 1, 5, 12, 0))


def test_convert_into_a_zero_decimal_currency() -> None:
    rates = FxRates("JPY", [DatedRate("USD", JAN1, D("150.255"))])
    assert str(rates.convert(D("1.00"), "USD", JAN1)) == "150"
    assert str(rates.convert(D("3.00"), "USD", JAN1)) == "451"  # 450.765


def test_dated_rate_validation() -> None:
    with pytest.raises(TypeError, match="float"):
        DatedRate("EUR", JAN1, 1.085)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive"):
        DatedRate("EUR", JAN1, D(0))
    with pytest.raises(TypeError, match="datetime"):
        DatedRate("EUR", datetime(2026, 1, 1), D(1))  # type: ignore[arg-type]
    with pytest.raises(CurrencyError):
        DatedRate("EURO", JAN1, D(1))
    assert DatedRate("eur", JAN1, "1.0850") == DatedRate("EUR", JAN1, D("1.0850"))  # type: ignore[arg-type]


def test_fx_rates_validation() -> None:
    with pytest.raises(ValueError, match="two different rates"):
        FxRates("USD", [DatedRate("EUR", JAN1, D("1.1")), DatedRate("EUR", JAN1, D("1.2"))])
    with pytest.raises(ValueError, match="reporting currency"):
        FxRates("USD", [DatedRate("USD", JAN1, D("1.1"))])
    same = FxRates("USD", [DatedRate("EUR", JAN1, D("1.1")), DatedRate("EUR", JAN1, D("1.10"))])
    assert same.rate("EUR", JAN1) == D("1.1")
    assert FxRates("USD", [DatedRate("USD", JAN1, D(1))]).currencies == frozenset()


def test_layered_prefers_the_crm_per_currency() -> None:
    crm = [DatedRate("EUR", date(2026, 3, 1), D("1.12"))]
    config = [
        DatedRate("EUR", date(2025, 1, 1), D("1.05")),
        DatedRate("GBP", date(2025, 1, 1), D("1.25")),
    ]
    rates = FxRates.layered("USD", crm, config)
    assert rates.rate("EUR", date(2026, 3, 5)) == D("1.12")
    assert rates.rate("GBP", date(2026, 3, 5)) == D("1.25")  # the CRM has no GBP: config
    # The CRM owns EUR: its history starts in March, config's EUR row is not used before it.
    with pytest.raises(MissingRateError, match="EUR"):
        rates.rate("EUR", date(2026, 2, 1))
    # An FxRates is itself a source of dated rates.
    again = FxRates.layered("USD", FxRates("USD", crm), FxRates("USD", config))
    assert list(again) == list(rates)
    with pytest.raises(ValueError, match="EUR"):
        FxRates.layered("USD", FxRates("EUR", config[1:]), [])


def test_salesforce_corporate_rates_inverted() -> None:
    # Corporate = reporting = USD. ConversionRate is units of IsoCode per 1 USD.
    rows = [
        {"IsoCode": "USD", "ConversionRate": D("1"), "StartDate": "0001-01-01"},
        {"IsoCode": "EUR", "ConversionRate": D("0.8"), "StartDate": "2026-01-01"},
        {"IsoCode": "EUR", "ConversionRate": D("0.9"), "StartDate": date(2026, 3, 1)},
        {"IsoCode": "JPY", "ConversionRate": "150", "StartDate": "2026-01-01", "Id": "04w1"},
    ]
    rates = FxRates.from_corporate_rates("USD", "USD", rows)
    assert rates.rate("EUR", date(2026, 2, 1)) == D("1.25")  # 1 / 0.8
    # 1 / 0.9 = 1.111..., 40 digits
    assert rates.rate("EUR", date(2026, 3, 1)) == D("1." + "1" * 39)
    assert rates.convert(D("90.00"), "EUR", date(2026, 3, 1)) == D("100.00")
    assert rates.convert(15000, "JPY", JAN1) == D("100.00")  # 15000 / 150
    with pytest.raises(MissingRateError):
        rates.rate("EUR", date(2025, 12, 31))


def test_salesforce_cross_rates_through_the_corporate_currency() -> None:
    # Corporate USD, reporting EUR. 1 USD = 0.8 EUR (Jan), 0.9 EUR (from March);
    # 1 USD = 0.75 GBP (Jan), 0.7 GBP (from February).
    rows = [
        {"IsoCode": "EUR", "ConversionRate": D("0.8"), "StartDate": "2026-01-01"},
        {"IsoCode": "EUR", "ConversionRate": D("0.9"), "StartDate": "2026-03-01"},
        {"IsoCode": "GBP", "ConversionRate": D("0.75"), "StartDate": "2026-01-01"},
        {"IsoCode": "GBP", "ConversionRate": D("0.7"), "StartDate": "2026-02-01"},
    ]
    rates = FxRates.from_corporate_rates("EUR", "USD", rows)
    assert rates.rate("USD", date(2026, 1, 15)) == D("0.8")
    assert rates.rate("USD", date(2026, 3, 15)) == D("0.9")
    # 1 GBP = 0.8 / 0.75 EUR in January, 0.8 / 0.7 in February, 0.9 / 0.7 from March.
    assert rates.rate("GBP", date(2026, 1, 15)) == D("1.0" + "6" * 37 + "7")
    assert rates.rate("GBP", date(2026, 2, 15)) == D("1.142857142857142857142857142857142857143")
    assert rates.rate("GBP", date(2026, 3, 15)) == D("1.285714285714285714285714285714285714286")
    assert rates.convert(D("75.00"), "GBP", date(2026, 1, 15)) == D("80.00")
    assert rates.convert(D("700.00"), "GBP", date(2026, 2, 15)) == D("800.00")
    assert rates.convert(D("700.00"), "GBP", date(2026, 3, 15)) == D("900.00")
    with pytest.raises(MissingRateError):
        rates.rate("GBP", date(2025, 12, 31))


def test_salesforce_rows_validation() -> None:
    good = {"IsoCode": "EUR", "ConversionRate": D("0.8"), "StartDate": "2026-01-01"}
    with pytest.raises(TypeError, match="parse_float"):
        corporate_dated_rates("USD", "USD", [{**good, "ConversionRate": 0.8}])
    with pytest.raises(ValueError, match="StartDate"):
        corporate_dated_rates("USD", "USD", [{"IsoCode": "EUR", "ConversionRate": D(1)}])
    with pytest.raises(ValueError, match="corporate"):
        corporate_dated_rates("USD", "USD", [{**good, "IsoCode": "USD", "ConversionRate": "1.1"}])
    with pytest.raises(ValueError, match="ISO date"):
        corporate_dated_rates("USD", "USD", [{**good, "StartDate": "01/02/2026"}])
    # A reporting currency the CRM has no rates for: nothing can be converted into it.
    assert corporate_dated_rates("CHF", "USD", [good]) == []


# --- properties --------------------------------------------------------------------------------

CURRENCIES = st.sampled_from(["USD", "EUR", "JPY", "BHD", "KWD", "CLF", "ISK", "VND"])

float_weights = st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False)
any_weight = st.one_of(
    float_weights,
    st.integers(min_value=0, max_value=10**6),
    st.fractions(min_value=0, max_value=1000),
    st.decimals(min_value=0, max_value=10**6, allow_nan=False, allow_infinity=False),
    st.sampled_from([0.3, 0.1, 0.4, 0.2, 0.225, 0.45, 0.1 / 7, 1 / 3, 0.25, 0.75, 0.05]),
)


def _exact_quota(total: int, weights: list[object], i: int) -> Fraction:
    fractions = [Fraction(w) if not isinstance(w, Fraction) else w for w in weights]  # type: ignore[arg-type]
    return total * fractions[i] / sum(fractions)


@settings(max_examples=300)
@given(total=st.integers(), weights=st.lists(any_weight, min_size=1, max_size=12))
def test_split_properties(total: int, weights: list[object]) -> None:
    if not any(weights):
        with pytest.raises(ValueError):
            split_minor(total, weights)  # type: ignore[arg-type]
        return
    parts = split_minor(total, weights)  # type: ignore[arg-type]
    assert sum(parts) == total
    assert len(parts) == len(weights)
    for i, part in enumerate(parts):
        assert abs(part - _exact_quota(total, weights, i)) < 1
        assert part * total >= 0  # same sign as the total (or zero)
        if not weights[i]:
            assert part == 0
    assert split_minor(-total, weights) == [-p for p in parts]  # type: ignore[arg-type]


group_weights = st.lists(
    st.one_of(
        float_weights,
        st.just(0.0),
        st.sampled_from([0.3, 0.1, 0.4, 0.2, 0.225, 0.1 / 7, 1 / 3, 0.25, 0.75, 1.0]),
    ),
    max_size=8,
)
group_totals = st.one_of(
    st.integers(min_value=-(10**7), max_value=10**7),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1),
)


@settings(max_examples=200, deadline=None)
@given(groups=st.lists(st.tuples(group_totals, group_weights), max_size=20))
def test_split_grouped_equals_scalar(groups: list[tuple[int, list[float]]]) -> None:
    totals = np.array([t for t, _ in groups], dtype=np.int64)
    offsets = np.array(np.cumsum([0] + [len(ws) for _, ws in groups]), dtype=np.int64)
    weights = np.array([w for _, ws in groups for w in ws], dtype=np.float64)
    parts = split_minor_grouped(totals, offsets, weights)
    assert parts.dtype == np.int64 and parts.shape == weights.shape
    for g, (total, ws) in enumerate(groups):
        got = parts[offsets[g] : offsets[g + 1]].tolist()
        if any(ws):
            assert got == split_minor(total, ws)
        else:
            assert got == [0] * len(ws)


@given(
    amount=st.decimals(
        min_value=-(10**30), max_value=10**30, allow_nan=False, allow_infinity=False
    ),
    currency=CURRENCIES,
)
def test_quantize_is_idempotent_and_close(amount: Decimal, currency: str) -> None:
    once = quantize(amount, currency)
    assert quantize(once, currency) == once
    assert once.as_tuple().exponent == -minor_unit(currency)
    assert abs(once - amount) <= D(1).scaleb(-minor_unit(currency)) / 2
    assert from_minor(to_minor(amount, currency), currency) == once


@given(value=st.floats(allow_nan=True, allow_infinity=True), currency=CURRENCIES)
def test_floats_are_refused_wherever_money_is_taken(value: float, currency: str) -> None:
    rates = FxRates("USD", [DatedRate("EUR", JAN1, D("1.1"))])
    calls = [
        lambda: to_decimal(value),  # type: ignore[arg-type]
        lambda: quantize(value, currency),  # type: ignore[arg-type]
        lambda: to_minor(value, currency),  # type: ignore[arg-type]
        lambda: from_minor(value, currency),  # type: ignore[arg-type]
        lambda: micros_to_decimal(value),  # type: ignore[arg-type]
        lambda: split_amount(value, currency, [1, 1]),  # type: ignore[arg-type]
        lambda: split_minor(value, [1, 1]),  # type: ignore[arg-type]
        lambda: rates.convert(value, "EUR", JAN1),  # type: ignore[arg-type]
        lambda: rates.convert_exact(value, "EUR", JAN1),  # type: ignore[arg-type]
        lambda: DatedRate("EUR", JAN1, value),  # type: ignore[arg-type]
        lambda: split_minor_grouped(np.array([value]), np.array([0, 1]), np.array([1.0])),
    ]
    for call in calls:
        with pytest.raises(TypeError):
            call()
