# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
# cython: cdivision=True
"""The compiled backend: OpenMP driver over the per-ISA C kernels (see _selu_kernels.h).

Backend contract (shared by every backend, see fastselu/_api.py): flat, C-contiguous,
native-endian float32/float64 arrays of one dtype and length; ``out`` may be an input.
"""
import os

cimport numpy as cnp
from cython.parallel cimport prange, parallel

cnp.import_array()

cdef extern from "_dispatch.h" nogil:
    ctypedef struct fs_kernels:
        const char *name
        void (*forward_f32)(const float *, float *, Py_ssize_t) noexcept nogil
        void (*forward_f64)(const double *, double *, Py_ssize_t) noexcept nogil
        void (*backward_x_f32)(const float *, const float *, float *, Py_ssize_t) noexcept nogil
        void (*backward_x_f64)(const double *, const double *, double *, Py_ssize_t) noexcept nogil
        void (*backward_y_f32)(const float *, const float *, float *, Py_ssize_t) noexcept nogil
        void (*backward_y_f64)(const double *, const double *, double *, Py_ssize_t) noexcept nogil
    int fs_num_variants()
    const fs_kernels *fs_variant(int i)
    int fs_variant_supported(int i)

cdef extern from "<fenv.h>" nogil:
    ctypedef struct fexcept_t:
        pass
    int FE_ALL_EXCEPT
    int fegetexceptflag(fexcept_t *flagp, int excepts)
    int fesetexceptflag(const fexcept_t *flagp, int excepts)

cdef extern from *:
    """
    #ifdef _OPENMP
    #define FS_OPENMP 1
    #else
    #define FS_OPENMP 0
    #endif
    """
    const int FS_OPENMP

cdef enum:
    # Below this many elements per thread a parallel region (~5 us to wake the pool here)
    # costs more than it saves; measured on the 2-core development machine (bench/).
    GRAIN = 32768
    # Chunk boundaries fall on whole cache lines (16 float32 / 8 float64) so threads never
    # share a line of the output.
    ALIGN_ELEMS = 16

cdef const fs_kernels *K = NULL
cdef int K_index = -1

VARIANTS = tuple(fs_variant(i).name.decode() for i in range(fs_num_variants()))
SUPPORTED = tuple(v for i, v in enumerate(VARIANTS) if fs_variant_supported(i))
OPENMP = bool(FS_OPENMP)


def set_simd(cap):
    """Use the best supported variant at or below ``cap`` (a name in VARIANTS, or None for
    the best this CPU runs); return its name.  Only safe while no kernel is running."""
    global K, K_index
    cdef int i, start = 0
    if cap is not None:
        if cap not in VARIANTS:
            if cap in ("avx512", "avx2"):   # not compiled on this architecture
                cap = "baseline"
            else:
                raise ValueError(f"unknown SIMD variant {cap!r}; expected one of {VARIANTS}")
        start = VARIANTS.index(cap)
    for i in range(start, fs_num_variants()):
        if fs_variant_supported(i):
            K = fs_variant(i)
            K_index = i
            return VARIANTS[i]
    raise RuntimeError("no SIMD variant usable")  # unreachable: baseline is always supported


def simd():
    return VARIANTS[K_index]


def info():
    return {"simd": VARIANTS[K_index], "openmp": OPENMP, "simd_supported": SUPPORTED,
            "simd_compiled": VARIANTS, "grain": GRAIN}


set_simd(os.environ.get("FASTSELU_SIMD") or None)


cdef inline int _typenum(cnp.ndarray a, str name, bint writable) except -1:
    # The front end guarantees all of this; checking it here keeps a wrong call from ever
    # touching memory it should not (the checks cost tens of nanoseconds).
    if not cnp.PyArray_IS_C_CONTIGUOUS(a) or not cnp.PyArray_ISNOTSWAPPED(a):
        raise ValueError(f"{name} must be C-contiguous and native-endian")
    if writable and not cnp.PyArray_ISWRITEABLE(a):
        raise ValueError(f"{name} is read-only")
    cdef int t = cnp.PyArray_TYPE(a)
    if t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64:
        raise TypeError(f"{name} must be float32 or float64, not {a.dtype}")
    return t


cdef inline Py_ssize_t _threads_for(Py_ssize_t n, int nthreads) noexcept nogil:
    cdef Py_ssize_t nt = n // GRAIN
    if nt > nthreads:
        nt = nthreads
    return nt if nt > 1 else 1


cdef inline Py_ssize_t _bound(Py_ssize_t n, Py_ssize_t nt, Py_ssize_t i) noexcept nogil:
    if i >= nt:
        return n
    cdef Py_ssize_t b = (n // nt) * i
    return b - b % ALIGN_ELEMS


# kind: 0 forward (a -> o), 1 backward from x (g=a, x=b), 2 backward from y (g=a, y=b)
cdef void _run(int kind, int typenum, char *a, char *b, char *o, Py_ssize_t n,
               Py_ssize_t nt) noexcept nogil:
    cdef Py_ssize_t i, lo, hi, item = 4 if typenum == cnp.NPY_FLOAT32 else 8
    cdef fexcept_t saved
    # The kernels evaluate both branches of a select; whatever flags that raises must not leak
    # (SPEC: fastselu leaves the floating-point exception state as it found it).
    fegetexceptflag(&saved, FE_ALL_EXCEPT)
    if nt <= 1:
        _chunk(kind, typenum, a, b, o, n)
    else:
        for i in prange(nt, num_threads=nt, schedule="static"):
            lo = _bound(n, nt, i)
            hi = _bound(n, nt, i + 1)
            _chunk(kind, typenum, a + lo * item, b + lo * item, o + lo * item, hi - lo)
    fesetexceptflag(&saved, FE_ALL_EXCEPT)


cdef inline void _chunk(int kind, int typenum, char *a, char *b, char *o,
                        Py_ssize_t n) noexcept nogil:
    if typenum == cnp.NPY_FLOAT32:
        if kind == 0:
            K.forward_f32(<float *>a, <float *>o, n)
        elif kind == 1:
            K.backward_x_f32(<float *>a, <float *>b, <float *>o, n)
        else:
            K.backward_y_f32(<float *>a, <float *>b, <float *>o, n)
    else:
        if kind == 0:
            K.forward_f64(<double *>a, <double *>o, n)
        elif kind == 1:
            K.backward_x_f64(<double *>a, <double *>b, <double *>o, n)
        else:
            K.backward_y_f64(<double *>a, <double *>b, <double *>o, n)


cdef _call(int kind, cnp.ndarray a, cnp.ndarray b, cnp.ndarray out, int nthreads):
    cdef int t = _typenum(a, "x" if kind == 0 else "grad_output", False)
    if _typenum(out, "out", True) != t or (b is not None and _typenum(b, "x", False) != t):
        raise TypeError("all arrays must have the same dtype")
    cdef Py_ssize_t n = cnp.PyArray_SIZE(a)
    if cnp.PyArray_SIZE(out) != n or (b is not None and cnp.PyArray_SIZE(b) != n):
        raise ValueError("all arrays must have the same number of elements")
    if nthreads < 1:
        raise ValueError("nthreads must be >= 1")
    cdef char *pa = <char *>cnp.PyArray_DATA(a)
    cdef char *pb = <char *>cnp.PyArray_DATA(b) if b is not None else pa
    cdef char *po = <char *>cnp.PyArray_DATA(out)
    cdef Py_ssize_t nt = _threads_for(n, nthreads) if FS_OPENMP else 1
    if n == 0:
        return
    with nogil:
        _run(kind, t, pa, pb, po, n, nt)


def forward(cnp.ndarray x not None, cnp.ndarray out not None, int nthreads):
    _call(0, x, None, out, nthreads)


def backward_x(cnp.ndarray g not None, cnp.ndarray x not None, cnp.ndarray out not None,
               int nthreads):
    _call(1, g, x, out, nthreads)


def backward_y(cnp.ndarray g not None, cnp.ndarray y not None, cnp.ndarray out not None,
               int nthreads):
    _call(2, g, y, out, nthreads)
