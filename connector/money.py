"""Exact money: ISO-4217 minor units, half-even rounding, exact splits and dated exchange rates.

Every amount in the connector is a :class:`decimal.Decimal` paired with an ISO-4217 code
(DESIGN section 3). A float cannot hold ``0.10`` exactly, and an error of one cent in a
written-back ``ROI_Attributed_Revenue__c`` is a support ticket, so every public function that
takes an amount refuses floats with a :class:`TypeError` instead of guessing.

Rounding is half-even (banker's rounding) everywhere, because it is what the CRMs and the
accounting systems use and because it does not drift upwards when many amounts are rounded.

Splitting an amount over campaigns uses the largest-remainder method in integer minor units,
so the parts of one opportunity add up to its (converted, rounded) amount exactly; weights are
attribution *credits*, not money, so they may be floats (converted to fractions exactly).

Dated rates (:class:`FxRates`) say "from ``start_date`` on, 1 unit of ``currency`` is ``rate``
units of the reporting currency", the model Salesforce's ``DatedConversionRate`` uses; the CRM's
own dated rates win over ``[[fx_rates]]`` rows from config, currency by currency
(:meth:`FxRates.layered`).

No module-level state is mutable: decimal contexts are created per call (or per
:class:`FxRates` instance), and the currency table is a read-only mapping.
"""

from __future__ import annotations

import math
import numbers
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import (
    MAX_EMAX,
    MAX_PREC,
    MIN_EMIN,
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
)
from fractions import Fraction
from types import MappingProxyType
from typing import Any

import numpy as np

__all__ = [
    "MAX_ENTERED_AMOUNT",
    "AmountError",
    "CurrencyError",
    "DatedRate",
    "FxRates",
    "MissingRateError",
    "corporate_dated_rates",
    "entered_amount",
    "format_money",
    "from_minor",
    "micros_to_decimal",
    "minor_unit",
    "normalize_currency",
    "quantize",
    "split_amount",
    "split_minor",
    "split_minor_grouped",
    "to_decimal",
    "to_minor",
]


class CurrencyError(ValueError):
    """A currency code that is malformed, unknown to ISO-4217, or cannot hold an amount."""


class MissingRateError(LookupError):
    """No dated exchange rate covers a currency on a day.

    Raised rather than falling back to some other rate, because converting at a wrong rate
    silently corrupts every ROI figure downstream; the message says how to fix the data.
    """

    def __init__(self, currency: str, on: date, reporting_currency: str | None = None) -> None:
        self.currency = currency
        self.on = on
        self.reporting_currency = reporting_currency
        into = f" into {reporting_currency}" if reporting_currency else ""
        day = on.isoformat()
        super().__init__(
            f"no exchange rate for {currency}{into} on {day}: add a [[fx_rates]] row in config "
            f'(currency = "{currency}", start_date on or before {day}) '
            f"or sync the CRM's dated rates"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # The default pickling would call __init__(message) and fail; keep the fields instead
        # (errors cross process boundaries in the scheduler's workers).
        return (type(self), (self.currency, self.on, self.reporting_currency))


# ---------------------------------------------------------------------------------------------
# ISO-4217 minor units
# ---------------------------------------------------------------------------------------------


def _codes(text: str) -> frozenset[str]:
    """A set of codes written as one space-separated string (the tables read like ISO's)."""
    return frozenset(text.split())


# Active ISO-4217 codes whose minor unit is 2 (the common case), from the ISO 4217 list one.
_TWO_DECIMALS = _codes(
    """
    AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN
    BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP
    GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT
    LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN
    NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE
    SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES
    WST XCD XCG YER ZAR ZMW ZWG
    """
)
# Withdrawn recently, but still found on historical CRM records (closed deals from before the
# change), so they stay convertible.
_WITHDRAWN_TWO_DECIMALS = _codes("ANG CUC HRK MRO SLL STD VEF ZWL")
_ZERO_DECIMALS = _codes("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF")
_THREE_DECIMALS = _codes("BHD IQD JOD KWD LYD OMR TND")
_FOUR_DECIMALS = _codes("CLF UYW")
# ISO lists these with minor unit "N.A.": precious metals, bond-market units, SDR, test codes.
_NO_MINOR_UNIT = _codes("XAG XAU XBA XBB XBC XBD XDR XPD XPT XSU XTS XUA XXX")

_MINOR_UNITS: Mapping[str, int] = MappingProxyType(
    {
        **dict.fromkeys(_TWO_DECIMALS | _WITHDRAWN_TWO_DECIMALS, 2),
        **dict.fromkeys(_ZERO_DECIMALS, 0),
        **dict.fromkeys(_THREE_DECIMALS, 3),
        **dict.fromkeys(_FOUR_DECIMALS, 4),
    }
)
# The smallest unit of each currency as a Decimal exponent template: Decimal("0.01") for USD.
_QUANTA: Mapping[str, Decimal] = MappingProxyType(
    {code: Decimal((0, (1,), -exponent)) for code, exponent in _MINOR_UNITS.items()}
)

_ONE = Decimal(1)
_INVERSE_PRECISION = 40  # digits kept when a rate must be inverted or crossed (1 / 0.92...)
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_FLOAT_HINT = (
    "a float cannot hold most decimal amounts exactly; pass a Decimal, an int or a string "
    "(parse JSON with parse_float=decimal.Decimal)"
)


def _exact_context() -> Context:
    """A fresh context in which +, -, * and quantize never round implicitly.

    Created per call rather than shared, so no module-level object carries flags between
    threads; MAX_PREC is safe because the operations used with it have exact results.
    """
    return Context(
        prec=MAX_PREC,
        Emax=MAX_EMAX,
        Emin=MIN_EMIN,
        rounding=ROUND_HALF_EVEN,
        traps=[InvalidOperation, DivisionByZero, Overflow],
    )


def _division_context() -> Context:
    """A context for the few divisions (inverted rates): far more digits than any amount needs."""
    return Context(
        prec=_INVERSE_PRECISION,
        rounding=ROUND_HALF_EVEN,
        traps=[InvalidOperation, DivisionByZero, Overflow],
    )


def normalize_currency(currency: str) -> str:
    """Return the upper-case ISO-4217 code, or raise :class:`CurrencyError` naming the input.

    CRMs and config files spell codes in any case (``usd``, `` EUR``); one spelling keeps the
    rate tables and the report keys consistent.
    """
    if not isinstance(currency, str):
        raise CurrencyError(
            f"currency code must be a string such as 'USD', got {type(currency).__name__} "
            f"{currency!r}"
        )
    code = currency.strip().upper()
    if len(code) != 3 or not (code.isascii() and code.isalpha()):
        raise CurrencyError(
            f"malformed currency code {currency!r}: expected a three-letter ISO-4217 code "
            "such as 'USD'"
        )
    if code in _NO_MINOR_UNIT:
        raise CurrencyError(
            f"currency code {code!r} has no minor unit in ISO-4217 (a metal, fund or test "
            "code) and cannot hold an amount of money"
        )
    if code not in _MINOR_UNITS:
        raise CurrencyError(f"unknown currency code {code!r}: not an active ISO-4217 code")
    return code


def minor_unit(currency: str) -> int:
    """The ISO-4217 exponent of ``currency``: 2 for USD, 0 for JPY, 3 for BHD, 4 for CLF.

    Rounding to the currency's own minor unit (not always cents) is what the CRMs store, so a
    JPY amount never carries decimals and a KWD amount keeps its fils.
    """
    return _MINOR_UNITS[normalize_currency(currency)]


# ---------------------------------------------------------------------------------------------
# Decimal conversions
# ---------------------------------------------------------------------------------------------


def _reject_float(value: object, what: str) -> None:
    if isinstance(value, float | np.floating):
        raise TypeError(f"{what} must not be a float (got {value!r}): {_FLOAT_HINT}")


def to_decimal(value: Decimal | int | str) -> Decimal:
    """Turn an amount from an API, a CSV or config into a finite Decimal, exactly.

    Strings are stripped (CSV cells carry spaces). Floats, booleans, NaN, infinities and empty
    strings are refused with a clear error, because each of them means the caller lost the
    amount before it got here.
    """
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, bool):
        raise TypeError(f"an amount must not be a bool (got {value!r})")
    elif isinstance(value, int):
        return Decimal(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError("empty string where an amount was expected")
        try:
            result = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"not a decimal amount: {value!r}") from None
    else:
        _reject_float(value, "an amount")
        if isinstance(value, numbers.Integral):  # numpy integers
            return Decimal(int(value))
        raise TypeError(
            f"an amount must be a Decimal, an int or a string, got {type(value).__name__} {value!r}"
        )
    if not result.is_finite():
        raise ValueError(f"an amount must be finite, got {value!r}")
    return result


def _quantize(value: Decimal, quantum: Decimal, context: Context) -> Decimal:
    result = value.quantize(quantum, rounding=ROUND_HALF_EVEN, context=context)
    # -0.00 is a valid Decimal but reads like a refund in a report; money has one zero.
    if result.is_zero() and result.is_signed():
        result = result.copy_abs()
    return result


def quantize(amount: Decimal | int | str, currency: str) -> Decimal:
    """Round ``amount`` half-even to the minor unit of ``currency`` (0.125 USD -> 0.12).

    Always returns the currency's exponent (``Decimal("5")`` USD -> ``Decimal("5.00")``), so equal
    amounts print alike, and never rounds implicitly on the way (no 28-digit context limit).
    """
    value = to_decimal(amount)
    return _quantize(value, _QUANTA[normalize_currency(currency)], _exact_context())


# What a person may enter as one amount: below 10^13 of any currency (ten trillion USD, or
# 10^11 USD of the largest yen amounts), so that sums of millions of them stay exact in
# int64 minor units and in any Decimal arithmetic downstream.
MAX_ENTERED_AMOUNT = Decimal(10) ** 13


class AmountError(ValueError):
    """An entered amount the connector will not keep; the message says what to write."""


def entered_amount(value: Decimal | int | str, currency: str) -> Decimal:
    """An amount a person typed (CLI, CSV, config) in ``currency``: finite, below
    :data:`MAX_ENTERED_AMOUNT` and with no more decimals than the currency has; returned at
    the currency's exponent (``"12.3"`` USD -> ``Decimal("12.30")``).

    Entered amounts are refused rather than rounded: ``12.345`` USD is a typo or a
    computed value, and rounding it silently would make the books differ from the invoice.
    """
    code = normalize_currency(currency)
    try:
        amount = to_decimal(value)
    except (TypeError, ValueError):
        raise AmountError(f"{value!r} is not an amount (write 1234.50)") from None
    if abs(amount) >= MAX_ENTERED_AMOUNT:
        raise AmountError(
            f"{value} is too large: an amount must be below 10,000,000,000,000 {code}"
        )
    rounded = _quantize(amount, _QUANTA[code], _exact_context())
    if rounded != amount:
        places = _MINOR_UNITS[code]
        unit = f"{places} decimal{'s' if places != 1 else ''}" if places else "no decimals"
        raise AmountError(f"{value} has more decimals than {code} has ({unit}); write {rounded}")
    return rounded


def format_money(amount: Decimal | int | str, currency: str) -> str:
    """``1,000,000,000.00 USD``: rounded to the currency's minor unit, grouped, with its code
    (never ``1E+9 USD`` or ``1,054.7 USD``, whatever exponent the Decimal arrived with)."""
    code = normalize_currency(currency)
    return f"{quantize(amount, code):,} {code}"


def _require_int(value: object, what: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{what} must be an int, not a bool (got {value!r})")
    if isinstance(value, int):
        return value
    _reject_float(value, what)
    if isinstance(value, numbers.Integral):
        return int(value)
    raise TypeError(f"{what} must be an int, got {type(value).__name__} {value!r}")


def to_minor(amount: Decimal | int | str, currency: str) -> int:
    """The amount as an integer count of minor units (12.345 USD -> 1234, half-even).

    Integer minor units are what the splitters and the numpy engine work in, because integer
    sums are exact and fast.
    """
    code = normalize_currency(currency)
    context = _exact_context()
    rounded = _quantize(to_decimal(amount), _QUANTA[code], context)
    return int(rounded.scaleb(_MINOR_UNITS[code], context=context))


def from_minor(units: int, currency: str) -> Decimal:
    """The Decimal amount for ``units`` minor units (1234 USD -> Decimal("12.34")), exactly."""
    count = _require_int(units, "minor units")
    code = normalize_currency(currency)
    return Decimal(count).scaleb(-_MINOR_UNITS[code], context=_exact_context())


def micros_to_decimal(micros: int | str) -> Decimal:
    """Google Ads ``cost_micros`` (an int64, sent as a JSON *string*) as an exact Decimal.

    ``"1230000"`` -> ``Decimal("1.230000")``; the result keeps all six decimals, so summing a
    month of days and rounding once gives the same figure as the Ads UI.
    """
    if isinstance(micros, str):
        text = micros.strip()
        body = text[1:] if text[:1] in "+-" else text
        if not (body.isascii() and body.isdigit()):
            raise ValueError(f"micros must be an integer string such as '1230000', got {micros!r}")
    else:
        text = str(_require_int(micros, "micros"))
    # "<digits>E-6" is read exactly by the Decimal constructor (no context, no rounding): the
    # hot path of an ad sync, hundreds of thousands of rows, without a context per call.
    return Decimal(text + "E-6")


# ---------------------------------------------------------------------------------------------
# Largest-remainder splits
# ---------------------------------------------------------------------------------------------

# Quotas are compared on a binary grid of 2**-e minor units, e in [bit_length(n) + 3, 32].
_GRID_MAX_BITS = 32
_GRID_SCALE_BITS = 36


def _to_fraction(weight: object, index: int) -> Fraction:
    """A weight as an exact fraction (floats are exact binary fractions, so nothing is lost)."""
    if isinstance(weight, bool):
        raise TypeError(f"weight {index} must be a number, not a bool")
    if isinstance(weight, Fraction):
        result = weight
    elif isinstance(weight, int):
        result = Fraction(weight)
    elif isinstance(weight, float | np.floating):
        if not math.isfinite(weight):
            raise ValueError(f"weight {index} must be finite, got {weight!r}")
        result = Fraction(float(weight))
    elif isinstance(weight, Decimal):
        if not weight.is_finite():
            raise ValueError(f"weight {index} must be finite, got {weight!r}")
        result = Fraction(weight)
    elif isinstance(weight, numbers.Rational):
        result = Fraction(int(weight.numerator), int(weight.denominator))
    else:
        raise TypeError(
            f"weight {index} must be a Decimal, int, Fraction or float, got "
            f"{type(weight).__name__} {weight!r}"
        )
    if result < 0:
        raise ValueError(f"weight {index} is negative ({weight!r}); weights must be >= 0")
    return result


def _grid_bits(total: int, n: int) -> int:
    """The grid exponent ``e`` for splitting ``total >= 0`` over ``n`` weights.

    The grid (2**-e units, about ``total * n * 2**-36``) sits far above the noise that float
    credits carry (``total * n * 2**-53``) and far below anything a person would call a
    difference; ``e >= bit_length(n) + 3`` keeps the n snapping errors together under 1/16
    unit, which the largest-remainder argument needs.
    """
    scaled = _GRID_SCALE_BITS - total.bit_length() - (n + 4).bit_length()
    return min(_GRID_MAX_BITS, max(n.bit_length() + 3, scaled))


def _largest_remainder(total: int, weights: Sequence[Fraction]) -> list[int]:
    """Split ``total >= 0`` over ``weights`` (>= 0, positive sum); the reference method.

    Each quota ``total * w / sum(w)`` (exact) is rounded half-even to the grid of
    :func:`_grid_bits`, giving ``j / 2**e``. Parts are ``j >> e`` plus one unit for each of the
    ``total - sum(floors)`` largest remainders ``j & (2**e - 1)``, ties to the lower index.
    The shortfall never exceeds the number of positive remainders (the snapping moves the
    quotas by less than 1/16 unit in all), so a zero weight never gets a unit, and every part
    stays strictly within one unit of its exact quota.
    """
    n = len(weights)
    bits = _grid_bits(total, n)
    weight_sum = sum(weights, Fraction(0))
    snapped: list[int] = []
    for weight in weights:
        numerator = (total * weight.numerator * weight_sum.denominator) << bits
        denominator = weight.denominator * weight_sum.numerator
        quotient, remainder = divmod(numerator, denominator)
        if 2 * remainder > denominator or (2 * remainder == denominator and quotient & 1):
            quotient += 1
        snapped.append(quotient)
    mask = (1 << bits) - 1
    parts = [j >> bits for j in snapped]
    remainders = [j & mask for j in snapped]
    shortfall = total - sum(parts)
    ranked = sorted(range(n), key=lambda i: (-remainders[i], i))
    for i in ranked[:shortfall]:
        parts[i] += 1
    return parts


def split_minor(total: int, weights: Sequence[Decimal | int | Fraction | float]) -> list[int]:
    """Split ``total`` minor units in proportion to ``weights``; the parts sum to ``total``.

    Largest-remainder method: every part is strictly within one unit of
    ``total * weight / sum(weights)``, zero weights get 0, remainder ties go to the earlier
    index (callers put the campaign whose first touch comes first in the journey first). A
    negative total is split as the negation of the split of ``-total``, so refunds mirror sales.

    Weights are credits, not money: floats are accepted and converted to fractions exactly.
    Because a credit meant as 3/10 is stored as 0.299999999999999988898, its last bits must
    not decide a tie (splitting 0.05 as ``[0.3, 0.3, 0.3, 0.1]`` is a four-way tie of 0.5 cent,
    so the first two get the cents, not the last one). Quotas are therefore compared on a fine
    binary grid (:func:`_grid_bits`, about ``total * n * 2**-36`` units): remainders equal on
    that grid are ties.
    """
    count = _require_int(total, "total (in minor units)")
    fractions = [_to_fraction(weight, i) for i, weight in enumerate(weights)]
    if not fractions:
        raise ValueError("cannot split over an empty list of weights")
    if not any(fractions):
        raise ValueError("cannot split over weights that are all zero")
    if count < 0:
        return [-part for part in _largest_remainder(-count, fractions)]
    return _largest_remainder(count, fractions)


def split_amount(
    amount: Decimal | int | str,
    currency: str,
    weights: Sequence[Decimal | int | Fraction | float],
) -> list[Decimal]:
    """Round ``amount`` once (half-even) to ``currency``'s minor unit, then split it exactly.

    Rounding before splitting is what makes the shares of one opportunity add up to the
    rounded amount the CRM shows, to the cent.
    """
    code = normalize_currency(currency)
    parts = split_minor(to_minor(amount, code), weights)
    return [from_minor(part, code) for part in parts]


# --- vectorised, for the attribution engine ---------------------------------------------------

_FLOAT_TOTAL_LIMIT = 2**50  # larger totals are split exactly, group by group
_KEY_GROUP_LIMIT = 2**30  # groups that fit the 63-bit sort key next to a 32-bit remainder


def _segment_sum_int(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Exact int64 sums of CSR segments.

    Differences of a cumulative sum: even if the running sum wraps around int64, numpy array
    arithmetic wraps modulo 2**64, so each difference is still exact when the segment's own
    sum fits in int64 (it does: it is at most the segment's total).
    """
    cumulative = np.zeros(values.shape[0] + 1, dtype=np.int64)
    np.cumsum(values, dtype=np.int64, out=cumulative[1:])
    result: np.ndarray = cumulative[offsets[1:]] - cumulative[offsets[:-1]]
    return result


def _bit_length(values: np.ndarray) -> np.ndarray:
    """``int.bit_length`` of non-negative int64 values below 2**53 (exact in float64)."""
    exponent: np.ndarray = np.frexp(values.astype(np.float64))[1].astype(np.int64)
    return exponent


def _as_int_array(values: object, what: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional, got shape {array.shape}")
    if array.dtype.kind == "f":
        raise TypeError(f"{what} must be an integer array (minor units), not {array.dtype}")
    if array.dtype.kind not in "iu":
        if array.size:
            raise TypeError(f"{what} must be an integer array, got {array.dtype}")
        array = array.astype(np.int64)
    if array.dtype.kind == "u" and array.size and int(array.max()) > _INT64_MAX:
        raise ValueError(f"{what} does not fit in int64")
    return array.astype(np.int64, copy=False)


def split_minor_grouped(totals: np.ndarray, offsets: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """:func:`split_minor` for many groups at once, vectorised (no Python loop per group).

    ``totals`` (int64[n_groups], minor units, may be negative) are split over CSR groups of
    ``weights`` (float64, finite, >= 0): group ``g`` is ``weights[offsets[g]:offsets[g + 1]]``.
    Returns int64 parts aligned with ``weights``. Each group is normalised by its own sum and
    the result equals ``split_minor(totals[g], weights of g)`` exactly: parts sum to the total,
    remainder ties go to the lower position, negative totals mirror positive ones. A group whose
    weights are all zero (or that has none) gets zeros: the caller reports it as unattributed.

    Float precision. ``floor(total * w / sum)`` in float64 can be off by one when the product
    is huge or lands next to an integer, and two close remainders can swap; either would move
    a unit to another campaign, or break the exact sum. So float64 is only used to find each
    quota's grid point ``j = round(q * 2**e)`` (the grid of :func:`split_minor`), and only where
    that is provably right: the float quota's error is below ``(total * (n + 4) + 1) * 2**-52``
    (n-term sum, one division, one product), which is at most 2**-16 grid steps, so ``j`` is
    certain whenever ``q * 2**e`` lies farther than twice that from a half step. From ``j`` on,
    everything is integer arithmetic: floors ``j >> e``, the shortfall ``total - sum(floors)``
    (exact, so the parts always add up), and the ranking of remainders ``j & (2**e - 1)``,
    which one stable sort of a ``(group, remainder)`` key does for all groups (ties keep their
    position). Credits meant as simple ratios (0.3, 0.1, 1/3) sit far from half steps, so they
    never fall out of the fast path; a group with an uncertain quota, a total above 2**50 or a
    weight sum that overflows is split exactly with fractions instead, one by one (a handful
    in ten thousand with random-looking credits).
    """
    totals_arr, offsets_arr, w, counts = _grouped_inputs(totals, offsets, weights)
    n_groups, n = totals_arr.shape[0], w.shape[0]
    group = np.repeat(np.arange(n_groups, dtype=np.int64), counts)
    has_weight = _segment_sum_int((w > 0).astype(np.int64), offsets_arr) > 0
    abs_totals = np.abs(totals_arr)
    fast, bits, grid, doubtful = _grid_points(abs_totals, offsets_arr, w, counts, group, has_weight)
    fast_totals = np.where(fast, abs_totals, 0)
    item_bits = bits[group]
    parts = grid >> item_bits
    remainder = grid & ((np.int64(1) << item_bits) - 1)
    shortfall = fast_totals - _segment_sum_int(parts, offsets_arr)
    rank = _remainder_ranks(remainder, item_bits, group, offsets_arr, n_groups, n)
    parts += rank < shortfall[group]
    for g in np.flatnonzero(doubtful | (has_weight & ~fast)).tolist():
        start, end = int(offsets_arr[g]), int(offsets_arr[g + 1])
        exact = _largest_remainder(int(abs_totals[g]), [Fraction(x) for x in w[start:end].tolist()])
        parts[start:end] = exact
    negative = totals_arr < 0
    if negative.any():
        parts = np.where(negative[group], -parts, parts)
    return parts


def _grouped_inputs(
    totals: np.ndarray, offsets: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The checked arrays of :func:`split_minor_grouped` and each group's size."""
    totals_arr = _as_int_array(totals, "totals")
    offsets_arr = _as_int_array(offsets, "offsets")
    weights_arr = np.asarray(weights)
    if weights_arr.ndim != 1:
        raise ValueError(f"weights must be one-dimensional, got shape {weights_arr.shape}")
    if weights_arr.dtype.kind not in "fiu" and weights_arr.size:
        raise TypeError(f"weights must be a float array, got {weights_arr.dtype}")
    w = weights_arr.astype(np.float64, copy=False)
    n_groups = totals_arr.shape[0]
    n = w.shape[0]
    if offsets_arr.shape[0] != n_groups + 1:
        raise ValueError(
            f"offsets must have n_groups + 1 = {n_groups + 1} entries, got {offsets_arr.shape[0]}"
        )
    if offsets_arr[0] != 0 or offsets_arr[-1] != n:
        raise ValueError(f"offsets must run from 0 to len(weights) = {n}")
    counts = np.diff(offsets_arr)
    if counts.size and counts.min() < 0:
        raise ValueError("offsets must be non-decreasing")
    if n and not (np.all(np.isfinite(w)) and w.min() >= 0):
        raise ValueError("weights must be finite and >= 0")
    if n_groups and totals_arr.min() == _INT64_MIN:
        raise ValueError("a total of -2**63 cannot be split (its negation overflows int64)")
    return totals_arr, offsets_arr, w, counts


def _grid_points(
    abs_totals: np.ndarray,
    offsets_arr: np.ndarray,
    w: np.ndarray,
    counts: np.ndarray,
    group: np.ndarray,
    has_weight: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Which groups take the float fast path, their grid exponents, every quota's grid
    point (0 outside fast groups), and the fast groups with a quota too close to call."""
    n_groups = abs_totals.shape[0]
    weight_sum = np.bincount(group, weights=w, minlength=n_groups)
    in_range = abs_totals <= _FLOAT_TOTAL_LIMIT
    small_totals = np.where(in_range, abs_totals, 0)
    # the grid exponent of each group, as _grid_bits computes it
    total_bits = _bit_length(small_totals)
    bits = np.minimum(
        _GRID_MAX_BITS,
        np.maximum(
            _bit_length(counts) + 3,
            _GRID_SCALE_BITS - total_bits - _bit_length(counts + 4),
        ),
    )
    error_bound = (small_totals.astype(np.float64) * (counts + 4) + 1.0) * 2.0**-52
    slack = 0.5 - 2.0 * np.ldexp(error_bound, bits)  # how far from a half step j is certain
    fast = has_weight & in_range & np.isfinite(weight_sum) & (total_bits + bits <= 51)
    fast &= slack > 0.25
    fast_totals = np.where(fast, abs_totals, 0)
    safe_sum = np.where(weight_sum > 0, weight_sum, 1.0)
    scaled = np.ldexp(fast_totals.astype(np.float64)[group] * (w / safe_sum[group]), bits[group])
    nearest = np.rint(scaled)
    uncertain = np.abs(scaled - nearest) > slack[group]
    grid = nearest.astype(np.int64)
    doubtful = fast & (_segment_sum_int(uncertain.astype(np.int64), offsets_arr) > 0)
    return fast, bits, grid, doubtful


def _remainder_ranks(
    remainder: np.ndarray,
    item_bits: np.ndarray,
    group: np.ndarray,
    offsets_arr: np.ndarray,
    n_groups: int,
    n: int,
) -> np.ndarray:
    """Each member's place in its group by remainder (descending), then position: one
    stable sort of an exact key for all groups."""
    descending = (np.int64(2**_GRID_MAX_BITS - 1)) - (remainder << (_GRID_MAX_BITS - item_bits))
    if n_groups < _KEY_GROUP_LIMIT:
        order = np.argsort((group << (_GRID_MAX_BITS + 1)) | descending, kind="stable")
    else:  # pragma: no cover - over a billion groups
        order = np.lexsort((descending, group))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n, dtype=np.int64) - offsets_arr[:-1][group]
    return rank


# ---------------------------------------------------------------------------------------------
# Dated exchange rates
# ---------------------------------------------------------------------------------------------


def _require_day(value: object, what: str) -> date:
    if isinstance(value, datetime):
        raise TypeError(
            f"{what} must be a date, not a datetime ({value!r}): take the day in the right "
            "time zone first (.date())"
        )
    if not isinstance(value, date):
        raise TypeError(f"{what} must be a date, got {type(value).__name__} {value!r}")
    return value


def _to_rate(value: Any, what: str) -> Decimal:
    _reject_float(value, what)
    rate = to_decimal(value)
    if rate <= 0:
        raise ValueError(f"{what} must be positive, got {rate}")
    return rate


@dataclass(frozen=True)
class DatedRate:
    """From ``start_date`` on (until the currency's next start date), 1 ``currency`` is ``rate``
    units of the reporting currency.

    The rate is a Decimal (a float would turn 1.0850 into 1.08499999...), the code is normalised
    to upper case so lookups never miss on spelling.
    """

    currency: str
    start_date: date
    rate: Decimal

    def __post_init__(self) -> None:
        object.__setattr__(self, "currency", normalize_currency(self.currency))
        _require_day(self.start_date, "start_date")
        object.__setattr__(self, "rate", _to_rate(self.rate, f"rate for {self.currency}"))


class FxRates:
    """Dated exchange rates into one reporting currency, with fast lookups.

    Per currency the start dates are kept sorted, so a lookup is one bisection: the engine
    converts a million opportunities per run. The reporting currency converts at 1.
    """

    __slots__ = ("_context", "_quantum", "_reporting", "_series")

    def __init__(self, reporting_currency: str, rates: Iterable[DatedRate]) -> None:
        reporting = normalize_currency(reporting_currency)
        by_currency: dict[str, dict[date, Decimal]] = {}
        for item in rates:
            if not isinstance(item, DatedRate):
                raise TypeError(f"expected DatedRate, got {type(item).__name__} {item!r}")
            if item.currency == reporting:
                if item.rate != _ONE:
                    raise ValueError(
                        f"rate {item.rate} for the reporting currency {reporting} on "
                        f"{item.start_date}: it always converts at 1"
                    )
                continue
            series = by_currency.setdefault(item.currency, {})
            known = series.get(item.start_date)
            if known is not None and known != item.rate:
                raise ValueError(
                    f"two different rates for {item.currency} from {item.start_date}: "
                    f"{known} and {item.rate}"
                )
            series[item.start_date] = item.rate
        self._reporting = reporting
        self._quantum = _QUANTA[reporting]
        self._series: dict[str, tuple[tuple[date, ...], tuple[Decimal, ...]]] = {
            code: (tuple(sorted(series)), tuple(series[day] for day in sorted(series)))
            for code, series in by_currency.items()
        }
        # Private to this instance; only exact operations run in it (see _exact_context).
        self._context = _exact_context()

    @property
    def reporting_currency(self) -> str:
        """The currency every amount is converted into."""
        return self._reporting

    @property
    def currencies(self) -> frozenset[str]:
        """Currencies with at least one dated rate (the reporting currency is implicit)."""
        return frozenset(self._series)

    def __iter__(self) -> Iterator[DatedRate]:
        """The dated rates, by currency and start date (so an FxRates can feed ``layered``)."""
        for code in sorted(self._series):
            days, values = self._series[code]
            for day, value in zip(days, values, strict=True):
                yield DatedRate(code, day, value)

    def __repr__(self) -> str:
        counts = ", ".join(
            f"{code}: {len(days)}" for code, (days, _) in sorted(self._series.items())
        )
        return f"FxRates({self._reporting!r}, {{{counts}}})"

    def rate(self, currency: str, on: date) -> Decimal:
        """Units of the reporting currency for 1 ``currency`` on day ``on``.

        The latest rate starting on or before ``on``; :class:`MissingRateError` when none does,
        since a guessed rate would corrupt every figure built on it.
        """
        _require_day(on, "on")
        series = self._series.get(currency)
        if series is None:
            code = normalize_currency(currency)
            if code == self._reporting:
                return _ONE
            series = self._series.get(code)
            if series is None:
                raise MissingRateError(code, on, self._reporting)
        days, values = series
        index = bisect_right(days, on) - 1
        if index < 0:
            raise MissingRateError(normalize_currency(currency), on, self._reporting)
        return values[index]

    def convert_exact(self, amount: Decimal | int | str, currency: str, on: date) -> Decimal:
        """``amount`` of ``currency`` in the reporting currency on ``on``, not rounded.

        For costs, which are summed over days exactly and rounded once (DESIGN section 5).
        """
        value = to_decimal(amount)
        return self._context.multiply(value, self.rate(currency, on))

    def convert(self, amount: Decimal | int | str, currency: str, on: date) -> Decimal:
        """``amount`` of ``currency`` in the reporting currency on ``on``, rounded half-even to
        the reporting currency's minor unit (each opportunity amount is converted once)."""
        return _quantize(self.convert_exact(amount, currency, on), self._quantum, self._context)

    @classmethod
    def layered(
        cls,
        reporting_currency: str,
        primary: Iterable[DatedRate],
        fallback: Iterable[DatedRate],
    ) -> FxRates:
        """Rates from ``primary`` (the CRM's dated rates) for every currency it has any rate for,
        from ``fallback`` (config ``[[fx_rates]]``) for the others.

        Whole currencies are taken from one source, never mixed by date: a CRM that keeps dated
        rates for EUR is the authority on EUR, and a gap in its history is an error to fix
        there, not something to paper over with a config row.
        """
        reporting = normalize_currency(reporting_currency)
        for name, source in (("primary", primary), ("fallback", fallback)):
            if isinstance(source, FxRates) and source.reporting_currency != reporting:
                raise ValueError(
                    f"{name} rates are into {source.reporting_currency}, not {reporting}"
                )
        primary_rates = list(primary)
        covered = {item.currency for item in primary_rates}
        rows = primary_rates + [item for item in fallback if item.currency not in covered]
        return cls(reporting, rows)

    @classmethod
    def from_corporate_rates(
        cls,
        reporting_currency: str,
        corporate_currency: str,
        rows: Iterable[Mapping[str, Any]],
    ) -> FxRates:
        """Rates from Salesforce ``DatedConversionRate`` rows; see :func:`corporate_dated_rates`."""
        reporting = normalize_currency(reporting_currency)
        return cls(reporting, corporate_dated_rates(reporting, corporate_currency, rows))


def _row_field(row: Mapping[str, Any], key: str) -> Any:
    try:
        return row[key]
    except KeyError:
        raise ValueError(f"DatedConversionRate row without {key}: {dict(row)!r}") from None


def _row_day(value: object) -> date:
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"StartDate is not an ISO date: {value!r}") from None
    return _require_day(value, "StartDate")


def _rate_on(days: Sequence[date], values: Sequence[Decimal], on: date) -> Decimal | None:
    index = bisect_right(days, on) - 1
    return values[index] if index >= 0 else None


def corporate_dated_rates(
    reporting_currency: str,
    corporate_currency: str,
    rows: Iterable[Mapping[str, Any]],
) -> list[DatedRate]:
    """Turn Salesforce ``DatedConversionRate`` rows into :class:`DatedRate` into the reporting
    currency.

    A row (``IsoCode``, ``ConversionRate``, ``StartDate``) says "from StartDate, 1 corporate unit
    = ConversionRate units of IsoCode", so 1 IsoCode = 1 / ConversionRate corporate units. When
    the reporting currency is not the corporate one, 1 IsoCode = CR(reporting) / CR(IsoCode)
    reporting units, re-derived at every date where either rate changes. Divisions run in
    Decimal at 40 significant digits (never float), far beyond any amount's precision.
    ``ConversionRate`` must be a Decimal, an int or a string: parse the API's JSON with
    ``parse_float=decimal.Decimal``.
    """
    reporting = normalize_currency(reporting_currency)
    corporate = normalize_currency(corporate_currency)
    per_code: dict[str, dict[date, Decimal]] = {}
    for row in rows:
        code = normalize_currency(_row_field(row, "IsoCode"))
        rate = _to_rate(_row_field(row, "ConversionRate"), f"ConversionRate of {code}")
        day = _row_day(_row_field(row, "StartDate"))
        if code == corporate:
            if rate != _ONE:
                raise ValueError(
                    f"ConversionRate {rate} for the corporate currency {corporate} on {day}: "
                    "it is 1 by definition (is the corporate currency right?)"
                )
            continue
        series = per_code.setdefault(code, {})
        if day in series and series[day] != rate:
            raise ValueError(f"two ConversionRates for {code} from {day}: {series[day]}, {rate}")
        series[day] = rate

    context = _division_context()
    result: list[DatedRate] = []
    if reporting == corporate:
        for code, series in per_code.items():
            for day, rate in series.items():
                result.append(DatedRate(code, day, context.divide(_ONE, rate)))
        return result

    reporting_series = per_code.get(reporting)
    if not reporting_series:
        return result  # nothing converts into the reporting currency: lookups will say so
    reporting_days = sorted(reporting_series)
    reporting_values = [reporting_series[day] for day in reporting_days]
    # 1 corporate = CR(reporting) reporting units.
    for day, rate in zip(reporting_days, reporting_values, strict=True):
        result.append(DatedRate(corporate, day, rate))
    for code, series in per_code.items():
        if code == reporting:
            continue
        days = sorted(series)
        values = [series[day] for day in days]
        for day in sorted(set(days) | set(reporting_days)):
            own = _rate_on(days, values, day)
            into = _rate_on(reporting_days, reporting_values, day)
            if own is None or into is None:
                continue
            result.append(DatedRate(code, day, context.divide(into, own)))
    return result
