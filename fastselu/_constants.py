"""The SELU constants, with the exact decimal strings they come from.

ALPHA and SCALE are defined by their 32-digit decimal expansions (PyTorch's values); the product
SCALE*ALPHA is the exact product of those decimals.  The float64 product ``SCALE * ALPHA`` is one
ULP below the correctly rounded value, so the rounded product is written out rather than computed.
Strings are kept so that wider types (np.longdouble) and mpmath can parse them without going
through float64.
"""

ALPHA_STR = "1.6732632423543772848170429916717"
SCALE_STR = "1.0507009873554804934193349852946"
# Exact product of the two decimals above (64 significant digits; nothing truncated).
SCALE_ALPHA_STR = "1.75809934084737685994021752081231934206024580891220830977098282"

ALPHA: float = float(ALPHA_STR)
SCALE: float = float(SCALE_STR)

# Correctly rounded SCALE*ALPHA (float(SCALE) * float(ALPHA) == 1.7580993408473766 is 1 ULP low).
SCALE_ALPHA_F64: float = 1.7580993408473768
# SCALE*ALPHA - SCALE_ALPHA_F64, rounded to float64: SA_hi + SA_lo for compensated sums
# (y + SCALE*ALPHA near y = -SCALE*ALPHA cancels to a few bits otherwise).
SCALE_ALPHA_LO_F64: float = 1.415351938008449760453239851887314580977098282e-17

# The same split for x86 80-bit long double: hi = SCALE_ALPHA_STR rounded to 64 bits, lo the rest.
SCALE_ALPHA_LO_LD_STR = "-4.9529079475610480965233172523090609906751555e-20"
