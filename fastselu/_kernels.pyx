# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
# cython: cdivision=True
"""The compiled backend: OpenMP driver over the per-ISA C kernels (see _selu_kernels.h).

Backend contract (shared by every backend, see fastselu/_backends.py): flat, C-contiguous,
native-endian float32/float64 arrays of one dtype and length; ``out`` may be an input.
float16 and bfloat16 arrays come either as themselves or as uint16/int16 views of their bits
with ``fmt="float16"``/``"bfloat16"`` (the front end passes views: bfloat16 is a user dtype,
recognised by name and item size without importing ml_dtypes).
"""
cimport numpy as cnp
from cython.parallel cimport prange
from libc.stdint cimport int64_t, uint16_t, uint32_t

from . import _config, _targets

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
        void (*half_init)() noexcept nogil
        void (*forward_f16)(const uint16_t *, uint16_t *, Py_ssize_t) noexcept nogil
        void (*forward_bf16)(const uint16_t *, uint16_t *, Py_ssize_t) noexcept nogil
        void (*backward_x_f16)(const uint16_t *, const uint16_t *, uint16_t *,
                               Py_ssize_t) noexcept nogil
        void (*backward_x_bf16)(const uint16_t *, const uint16_t *, uint16_t *,
                                Py_ssize_t) noexcept nogil
        void (*backward_y_f16)(const uint16_t *, const uint16_t *, uint16_t *,
                               Py_ssize_t) noexcept nogil
        void (*backward_y_bf16)(const uint16_t *, const uint16_t *, uint16_t *,
                                Py_ssize_t) noexcept nogil
        void (*dropout_f32)(const float *, float *, Py_ssize_t, const double *, uint32_t,
                            uint32_t, int64_t, int64_t, int) noexcept nogil
        void (*dropout_f64)(const double *, double *, Py_ssize_t, const double *, uint32_t,
                            uint32_t, int64_t, int64_t, int) noexcept nogil
        void (*dropout_bwd_f32)(const float *, const float *, float *, Py_ssize_t,
                                const double *, uint32_t, uint32_t, int64_t, int64_t,
                                int) noexcept nogil
        void (*dropout_bwd_f64)(const double *, const double *, double *, Py_ssize_t,
                                const double *, uint32_t, uint32_t, int64_t, int64_t,
                                int) noexcept nogil
        void (*dropout_h16)(const uint16_t *, uint16_t *, Py_ssize_t, const double *, uint32_t,
                            uint32_t, int64_t, int64_t, int, int) noexcept nogil
        void (*dropout_bwd_h16)(const uint16_t *, const uint16_t *, uint16_t *, Py_ssize_t,
                                const double *, uint32_t, uint32_t, int64_t, int64_t, int,
                                int) noexcept nogil
    int fs_num_variants()
    const fs_kernels *fs_variant(int i)
    int fs_variant_supported(int i)

cdef extern from "numpy/ndarraytypes.h":
    int NPY_USERDEF   # the first typenum of user dtypes (ml_dtypes' bfloat16 gets one)

cdef extern from "numpy/arrayobject.h":
    # NULL descr: the prototype's dtype (a new reference; numpy's .pxd does not declare it)
    object PyArray_NewLikeArray(cnp.ndarray prototype, cnp.NPY_ORDER order, void *descr,
                                int subok)

cdef extern from "<fenv.h>" nogil:
    ctypedef struct fexcept_t:
        pass
    int FE_ALL_EXCEPT
    int fegetexceptflag(fexcept_t *flagp, int excepts)
    int fesetexceptflag(const fexcept_t *flagp, int excepts)

cdef extern from *:
    """
    #include <string.h>
    /* Reference loops for benchmarks: what memory speed looks like through the same driver. */
    static void fs_add_f32(const float *a, const float *b, float *o, Py_ssize_t n)
    { for (Py_ssize_t i = 0; i < n; i++) o[i] = a[i] + b[i]; }
    static void fs_add_f64(const double *a, const double *b, double *o, Py_ssize_t n)
    { for (Py_ssize_t i = 0; i < n; i++) o[i] = a[i] + b[i]; }
    /* GNU OpenMP exits the whole process when it cannot create a worker thread (under an
       address-space or task limit, say).  So before a calling thread first asks for more
       threads than its pool has had, try to start that many plain threads (same default stack
       size) and cap the request at what worked.  Per calling thread: each has its own pool.
       POSIX only (pthreads): Windows' OpenMP runtimes (vcomp, libomp) do not exit that way, and
       a build without OpenMP never starts threads, so there it is the identity. */
    #if defined(_OPENMP) && !defined(_WIN32)
    #include <pthread.h>
    #include <stdlib.h>
    static __thread int fs_threads_verified = 1;
    static void *fs_noop(void *arg) { return arg; }
    static int fs_startable_threads(int want)
    {
        if (want <= fs_threads_verified) return want;
        pthread_t *t = (pthread_t *)malloc(sizeof(pthread_t) * (size_t)want);
        int started = 0;
        if (t != NULL)
            while (started < want - 1 && pthread_create(&t[started], NULL, fs_noop, NULL) == 0)
                started++;
        for (int i = 0; i < started; i++) pthread_join(t[i], NULL);
        free(t);
        if (started + 1 > fs_threads_verified) fs_threads_verified = started + 1;
        return started + 1;
    }
    #else
    static int fs_startable_threads(int want) { return want; }
    #endif
    #ifdef _OPENMP
    #define FS_OPENMP 1
    #else
    #define FS_OPENMP 0
    #endif
    """
    const int FS_OPENMP
    int fs_startable_threads(int want) noexcept nogil
    void fs_add_f32(const float *, const float *, float *, Py_ssize_t) noexcept nogil
    void fs_add_f64(const double *, const double *, double *, Py_ssize_t) noexcept nogil
    void *memcpy(void *, const void *, size_t) noexcept nogil

cdef enum:
    # Below this many elements per thread a parallel region (~5 us to wake the pool here)
    # costs more than it saves; measured on the 2-core development machine (bench/).
    GRAIN = 32768
    # Chunk boundaries fall on multiples of 64 bytes of float32 (128 of float64) from the
    # start: threads share no cache line of the output only if it starts on one.  NumPy only
    # promises 16-byte alignment, so neighbouring threads may write one line in common; that
    # costs a little speed at the boundary, never correctness (each element has one writer).
    ALIGN_ELEMS = 16
    # Internal code of bfloat16 where the driver passes a typenum (a user dtype has no fixed one).
    BF16 = -2

cdef enum Kind:
    KIND_FORWARD      # a -> o
    KIND_BACKWARD_X   # grad a, input x b -> o
    KIND_BACKWARD_Y   # grad a, result y b -> o
    KIND_COPY         # a -> o, and
    KIND_ADD          # a + b -> o: the memory-speed references for benchmarks

cdef const fs_kernels *K = NULL
cdef int K_index = -1

VARIANTS = tuple(fs_variant(i).name.decode() for i in range(fs_num_variants()))
SUPPORTED = tuple(v for i, v in enumerate(VARIANTS) if fs_variant_supported(i))
OPENMP = bool(FS_OPENMP)


def _compiled_cap(cap):
    """A declared variant that this build lacks: the best compiled one below it in its
    architecture's order, or baseline for another architecture's name (_targets.py)."""
    arch = _targets.arch_of(cap)
    if arch is None:
        raise ValueError(f"unknown SIMD variant {cap!r}; expected one of "
                         f"{_targets.variant_names()}")
    order = list(_targets.TARGETS[arch])
    for name in order[order.index(cap):]:
        if name in VARIANTS and name != "baseline":
            return name
    return "baseline"


def set_simd(cap):
    """Use the best supported variant at or below ``cap`` (a name in VARIANTS, or None for
    the best this CPU runs); return its name.  Only safe while no kernel is running."""
    global K, K_index
    cdef int i, start = 0
    if cap is not None:
        if cap not in VARIANTS:
            cap = _compiled_cap(cap)
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


set_simd(_config.SIMD_CAP)   # FASTSELU_SIMD as validated at import (None: no cap)


cdef int _bf16_typenum = -1   # ml_dtypes' bfloat16, once seen (its number is per process)


cdef inline int _kind_of(cnp.ndarray a):
    """The driver's code for a's dtype (typenum, or BF16), or 0 if the kernels do not take it."""
    global _bf16_typenum
    cdef int t = cnp.PyArray_TYPE(a)
    if t == cnp.NPY_FLOAT32 or t == cnp.NPY_FLOAT64 or t == cnp.NPY_FLOAT16:
        return t
    if t == _bf16_typenum:
        return BF16
    if _bf16_typenum < 0 and t >= NPY_USERDEF and cnp.PyArray_ITEMSIZE(a) == 2:
        if a.dtype.name == "bfloat16":
            _bf16_typenum = t
            return BF16
    return 0


cdef inline int _typenum(cnp.ndarray a, str name, bint writable, int fmt) except? -3:
    # The front end guarantees all of this; checking it here keeps a wrong call from ever
    # touching memory it should not (the checks cost tens of nanoseconds).
    if (not cnp.PyArray_IS_C_CONTIGUOUS(a) or not cnp.PyArray_ISNOTSWAPPED(a)
            or not cnp.PyArray_ISALIGNED(a)):
        raise ValueError(f"{name} must be C-contiguous, aligned and native-endian")
    if writable and not cnp.PyArray_ISWRITEABLE(a):
        raise ValueError(f"{name} is read-only")
    cdef int t = cnp.PyArray_TYPE(a)
    if fmt != 0:
        if t != cnp.NPY_UINT16 and t != cnp.NPY_INT16:
            raise TypeError(f"{name} must be a uint16/int16 view of the bits, not {a.dtype}")
        return fmt
    t = _kind_of(a)
    if t == 0:
        raise TypeError(f"{name} must be float16, bfloat16, float32 or float64, not {a.dtype}")
    return t


cdef inline int _fmt_code(object fmt) except? -3:
    if fmt is None:
        return 0
    if fmt == "float16":
        return cnp.NPY_FLOAT16
    if fmt == "bfloat16":
        return BF16
    raise ValueError(f"fmt must be None, 'float16' or 'bfloat16', not {fmt!r}")


cdef inline int _itemsize(int code) noexcept nogil:
    return 4 if code == cnp.NPY_FLOAT32 else (8 if code == cnp.NPY_FLOAT64 else 2)


cdef inline void _prepare(int code) noexcept:
    # Called with the GIL held: the 16-bit tables are built once, before any thread reads them.
    if code == cnp.NPY_FLOAT16 or code == BF16:
        K.half_init()


cdef inline Py_ssize_t _threads_for(Py_ssize_t n, int nthreads) noexcept nogil:
    cdef Py_ssize_t nt = n // GRAIN
    if nt > nthreads:
        nt = nthreads
    return fs_startable_threads(<int>nt) if nt > 1 else 1


cdef inline Py_ssize_t _bound(Py_ssize_t n, Py_ssize_t nt, Py_ssize_t i) noexcept nogil:
    if i >= nt:
        return n
    cdef Py_ssize_t b = (n // nt) * i
    return b - b % ALIGN_ELEMS


cdef void _run(Kind kind, int typenum, char *a, char *b, char *o, Py_ssize_t n,
               Py_ssize_t nt) noexcept nogil:
    cdef fexcept_t saved
    # The kernels evaluate both branches of a select; whatever flags that raises must not leak
    # (SPEC: fastselu leaves the floating-point exception state as it found it).
    fegetexceptflag(&saved, FE_ALL_EXCEPT)
    if nt <= 1:
        _chunk(kind, typenum, a, b, o, n)
    else:
        _run_threads(kind, typenum, a, b, o, n, nt)
    fesetexceptflag(&saved, FE_ALL_EXCEPT)


# The parallel region lives in its own function, called between the flag save and restore:
# clang calls into LLVM's OpenMP runtime at the entry of any function holding one, and its first
# such call (per thread) initialises the runtime, which raises "inexact".
cdef void _run_threads(Kind kind, int typenum, char *a, char *b, char *o, Py_ssize_t n,
                       Py_ssize_t nt) noexcept nogil:
    cdef Py_ssize_t i, lo, hi, item = _itemsize(typenum)
    for i in prange(nt, num_threads=nt, schedule="static"):
        lo = _bound(n, nt, i)
        hi = _bound(n, nt, i + 1)
        _chunk(kind, typenum, a + lo * item, b + lo * item, o + lo * item, hi - lo)


cdef inline void _chunk(Kind kind, int typenum, char *a, char *b, char *o,
                        Py_ssize_t n) noexcept nogil:
    if kind == KIND_COPY:
        memcpy(o, a, n * _itemsize(typenum))
    elif typenum == cnp.NPY_FLOAT16:
        if kind == KIND_FORWARD:
            K.forward_f16(<uint16_t *>a, <uint16_t *>o, n)
        elif kind == KIND_BACKWARD_X:
            K.backward_x_f16(<uint16_t *>a, <uint16_t *>b, <uint16_t *>o, n)
        else:
            K.backward_y_f16(<uint16_t *>a, <uint16_t *>b, <uint16_t *>o, n)
    elif typenum == BF16:
        if kind == KIND_FORWARD:
            K.forward_bf16(<uint16_t *>a, <uint16_t *>o, n)
        elif kind == KIND_BACKWARD_X:
            K.backward_x_bf16(<uint16_t *>a, <uint16_t *>b, <uint16_t *>o, n)
        else:
            K.backward_y_bf16(<uint16_t *>a, <uint16_t *>b, <uint16_t *>o, n)
    elif kind == KIND_ADD:
        if typenum == cnp.NPY_FLOAT32:
            fs_add_f32(<float *>a, <float *>b, <float *>o, n)
        else:
            fs_add_f64(<double *>a, <double *>b, <double *>o, n)
    elif typenum == cnp.NPY_FLOAT32:
        if kind == KIND_FORWARD:
            K.forward_f32(<float *>a, <float *>o, n)
        elif kind == KIND_BACKWARD_X:
            K.backward_x_f32(<float *>a, <float *>b, <float *>o, n)
        else:
            K.backward_y_f32(<float *>a, <float *>b, <float *>o, n)
    else:
        if kind == KIND_FORWARD:
            K.forward_f64(<double *>a, <double *>o, n)
        elif kind == KIND_BACKWARD_X:
            K.backward_x_f64(<double *>a, <double *>b, <double *>o, n)
        else:
            K.backward_y_f64(<double *>a, <double *>b, <double *>o, n)


cdef _call(Kind kind, cnp.ndarray a, cnp.ndarray b, cnp.ndarray out, int nthreads, object fmt):
    cdef int f = _fmt_code(fmt)
    cdef int t = _typenum(a, "x" if kind == KIND_FORWARD else "grad_output", False, f)
    if (_typenum(out, "out", True, f) != t
            or (b is not None and _typenum(b, "x", False, f) != t)):
        raise TypeError("all arrays must have the same dtype")
    if kind == KIND_ADD and _itemsize(t) == 2:
        raise TypeError("add takes float32 or float64 arrays")
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
    _prepare(t)
    with nogil:
        _run(kind, t, pa, pb, po, n, nt)


def forward(cnp.ndarray x not None, cnp.ndarray out not None, int nthreads, fmt=None):
    _call(KIND_FORWARD, x, None, out, nthreads, fmt)


def backward_x(cnp.ndarray g not None, cnp.ndarray x not None, cnp.ndarray out not None,
               int nthreads, fmt=None):
    _call(KIND_BACKWARD_X, g, x, out, nthreads, fmt)


def backward_y(cnp.ndarray g not None, cnp.ndarray y not None, cnp.ndarray out not None,
               int nthreads, fmt=None):
    _call(KIND_BACKWARD_Y, g, y, out, nthreads, fmt)


def copy(cnp.ndarray src not None, cnp.ndarray dst not None, int nthreads):
    """dst[:] = src with the kernels' threading (benchmark reference)."""
    _call(KIND_COPY, src, None, dst, nthreads, None)


def add(cnp.ndarray a not None, cnp.ndarray b not None, cnp.ndarray out not None, int nthreads):
    """out[:] = a + b with the kernels' threading (benchmark reference)."""
    _call(KIND_ADD, a, b, out, nthreads, None)


# ---------------------------------------------------------------------------------------------
# AlphaDropout (fastselu/_dropout_kernels.h): threads split the elements as above; each chunk
# passes its own logical start index, so any split gives the same mask.

cdef enum:
    N_DROPOUT_PARAMS = 38   # FS_N_PARAMS, fastselu/_dropout.py's N_PARAMS


cdef void _run_dropout(int bwd, int typenum, char *g, char *x, char *o, Py_ssize_t n,
                       const double *prm, uint32_t k0, uint32_t k1, int64_t start,
                       int64_t inner, int flag, Py_ssize_t nt) noexcept nogil:
    cdef fexcept_t saved
    fegetexceptflag(&saved, FE_ALL_EXCEPT)
    if nt <= 1:
        _dropout_chunk(bwd, typenum, g, x, o, n, prm, k0, k1, start, inner, flag)
    else:
        _run_dropout_threads(bwd, typenum, g, x, o, n, prm, k0, k1, start, inner, flag, nt)
    fesetexceptflag(&saved, FE_ALL_EXCEPT)


cdef void _run_dropout_threads(int bwd, int typenum, char *g, char *x, char *o, Py_ssize_t n,
                               const double *prm, uint32_t k0, uint32_t k1, int64_t start,
                               int64_t inner, int flag, Py_ssize_t nt) noexcept nogil:
    cdef Py_ssize_t i, lo, hi, item = _itemsize(typenum)
    for i in prange(nt, num_threads=nt, schedule="static"):
        lo = _bound(n, nt, i)
        hi = _bound(n, nt, i + 1)
        _dropout_chunk(bwd, typenum, g + lo * item, x + lo * item, o + lo * item, hi - lo,
                       prm, k0, k1, start + lo, inner, flag)


cdef inline void _dropout_chunk(int bwd, int typenum, char *g, char *x, char *o, Py_ssize_t n,
                                const double *prm, uint32_t k0, uint32_t k1, int64_t start,
                                int64_t inner, int flag) noexcept nogil:
    cdef int bf = typenum == BF16
    if typenum == cnp.NPY_FLOAT16 or bf:
        if bwd:
            K.dropout_bwd_h16(<uint16_t *>g, <uint16_t *>x, <uint16_t *>o, n, prm, k0, k1, start,
                              inner, flag, bf)
        else:
            K.dropout_h16(<uint16_t *>x, <uint16_t *>o, n, prm, k0, k1, start, inner, flag, bf)
    elif typenum == cnp.NPY_FLOAT32:
        if bwd:
            K.dropout_bwd_f32(<float *>g, <float *>x, <float *>o, n, prm, k0, k1, start, inner,
                              flag)
        else:
            K.dropout_f32(<float *>x, <float *>o, n, prm, k0, k1, start, inner, flag)
    else:
        if bwd:
            K.dropout_bwd_f64(<double *>g, <double *>x, <double *>o, n, prm, k0, k1, start,
                              inner, flag)
        else:
            K.dropout_f64(<double *>x, <double *>o, n, prm, k0, k1, start, inner, flag)


cdef _dropout_call(int bwd, cnp.ndarray g, cnp.ndarray x, cnp.ndarray out, cnp.ndarray prm,
                   key, int64_t start, int64_t inner, int flag, int nthreads, object fmt):
    cdef int f = _fmt_code(fmt)
    cdef int t = _typenum(x, "grad_output" if bwd else "x", False, f)
    if _typenum(out, "out", True, f) != t or _typenum(g, "grad_output", False, f) != t:
        raise TypeError("all arrays must have the same dtype")
    if f == 0 and t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64:
        raise TypeError("the dropout kernels take float32 or float64 arrays, or fmt= with bits")
    cdef Py_ssize_t n = cnp.PyArray_SIZE(x)
    if cnp.PyArray_SIZE(out) != n or cnp.PyArray_SIZE(g) != n:
        raise ValueError("all arrays must have the same number of elements")
    if (cnp.PyArray_TYPE(prm) != cnp.NPY_FLOAT64 or not cnp.PyArray_IS_C_CONTIGUOUS(prm)
            or not cnp.PyArray_ISNOTSWAPPED(prm) or cnp.PyArray_SIZE(prm) != N_DROPOUT_PARAMS):
        raise ValueError(f"prm must be a contiguous float64 array of {N_DROPOUT_PARAMS} values")
    if nthreads < 1 or start < 0 or inner < 1:
        raise ValueError("nthreads and inner must be >= 1, start >= 0")
    cdef uint32_t k0 = <uint32_t>int(key[0]), k1 = <uint32_t>int(key[1])
    cdef Py_ssize_t nt = _threads_for(n, nthreads) if FS_OPENMP else 1
    cdef char *pg = <char *>cnp.PyArray_DATA(g)
    cdef char *px = <char *>cnp.PyArray_DATA(x)
    cdef char *po = <char *>cnp.PyArray_DATA(out)
    cdef const double *pp = <const double *>cnp.PyArray_DATA(prm)
    if n == 0:
        return
    with nogil:
        _run_dropout(bwd, t, pg, px, po, n, pp, k0, k1, start, inner, flag, nt)


cdef extern from *:
    """
    /* Transparent huge pages for a fresh output buffer (Linux; THP in `madvise` mode, the
       common default, gives them only to ranges that ask).  NumPy asks for every array of
       4 MiB and more; PyTorch's CPU allocator does not, so a kernel writing a new tensor
       faults it in 4 KiB at a time: about 25 ms per 40 MB here, more than the kernel itself.
       Only the 2 MiB-aligned interior is advised; a range that cannot take the advice (not
       anonymous memory, say) keeps its small pages: the result is ignored. */
    #if defined(__linux__)
    #include <sys/mman.h>
    #endif
    #include <stdint.h>
    static void fs_advise_hugepages(char *p, Py_ssize_t nbytes)
    {
    #if defined(__linux__) && defined(MADV_HUGEPAGE)
        uintptr_t lo = ((uintptr_t)p + 0x1FFFFF) & ~(uintptr_t)0x1FFFFF;
        uintptr_t hi = ((uintptr_t)p + (uintptr_t)nbytes) & ~(uintptr_t)0x1FFFFF;
        if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
    #else
        (void)p; (void)nbytes;
    #endif
    }
    """
    void fs_advise_hugepages(char *p, Py_ssize_t nbytes) noexcept nogil


def advise_hugepages(size_t address, Py_ssize_t nbytes):
    """Ask for transparent huge pages under nbytes of contiguous memory at `address` that is
    about to be written for the first time (an output PyTorch allocated): page faults cost more
    than the kernels.  Below 4 MiB (NumPy's own threshold) and on other platforms: nothing."""
    if nbytes >= (4 << 20):
        fs_advise_hugepages(<char *>address, nbytes)


def selu_at(int kind, bint f64, size_t a, size_t b, size_t o, Py_ssize_t n):
    """The SELU kernels on raw addresses, for fastselu.torch's eager autograd path, which has
    checked its tensors (CPU, C-contiguous, float32 or float64 as `f64` says, n elements each;
    `o` either new or exactly an input) and so skips a NumPy view per tensor (~2 us each, most of
    a small training step's overhead).  kind 0: o = SELU(a); 1: o = a * SELU'(b) from x = b;
    2: the same from the result y = b.  Threads as the fast path's."""
    cdef Kind k = KIND_FORWARD if kind == 0 else (KIND_BACKWARD_X if kind == 1 else KIND_BACKWARD_Y)
    cdef int t = cnp.NPY_FLOAT64 if f64 else cnp.NPY_FLOAT32
    cdef Py_ssize_t nt = _nthreads(n)
    if n > 0:
        with nogil:
            _run(k, t, <char *>a, <char *>b, <char *>o, n, nt)


def dropout_at(int bwd, int dtype, size_t g, size_t x, size_t o, Py_ssize_t n,
               cnp.ndarray prm not None, uint32_t k0, uint32_t k1, int64_t inner, int flag,
               int nthreads):
    """dropout (bwd = 0; x the input, g unused) or dropout_backward (bwd = 1; flag the mode) on
    raw addresses, for fastselu.torch's eager calls, which have checked their tensors (CPU,
    C-contiguous, of the dtype that `dtype` codes: 0 float32, 1 float64, 2 float16, 3 bfloat16;
    n elements each, `o` new or exactly x) and the parameters (`prm` from _dropout.params for
    that dtype, inner >= 1, mode in 0..2): no NumPy views."""
    if (cnp.PyArray_TYPE(prm) != cnp.NPY_FLOAT64 or not cnp.PyArray_IS_C_CONTIGUOUS(prm)
            or cnp.PyArray_SIZE(prm) != N_DROPOUT_PARAMS):
        raise ValueError(f"prm must be a contiguous float64 array of {N_DROPOUT_PARAMS} values")
    if dtype < 0 or dtype > 3:
        raise ValueError("dtype must be 0, 1, 2 or 3")
    cdef int t = (cnp.NPY_FLOAT32, cnp.NPY_FLOAT64, cnp.NPY_FLOAT16, BF16)[dtype]
    cdef Py_ssize_t nt = _threads_for(n, nthreads) if FS_OPENMP else 1
    cdef const double *pp = <const double *>cnp.PyArray_DATA(prm)
    if n > 0:
        with nogil:
            _run_dropout(bwd, t, <char *>g, <char *>x, <char *>o, n, pp, k0, k1, 0, inner, flag,
                         nt)


def dropout(cnp.ndarray x not None, cnp.ndarray out not None, cnp.ndarray prm not None, key,
            int64_t start, int64_t inner, bint fused, int nthreads, fmt=None):
    """out = AlphaDropout(x) (of SELU(x) if fused) for logical indices start, start + 1, ..."""
    _dropout_call(0, x, x, out, prm, key, start, inner, fused, nthreads, fmt)


def dropout_backward(cnp.ndarray g not None, cnp.ndarray x not None, cnp.ndarray out not None,
                     cnp.ndarray prm not None, key, int64_t start, int64_t inner, int mode,
                     int nthreads, fmt=None):
    """The gradient of dropout(); mode 0 plain (x unused), 1 fused from x, 2 fused from z."""
    if mode < 0 or mode > 2:
        raise ValueError("mode must be 0, 1 or 2")
    _dropout_call(1, g, x, out, prm, key, start, inner, mode, nthreads, fmt)


# ---------------------------------------------------------------------------------------------
# Fast paths for the front end: the common case checked and run here in one call, so a small
# array costs well under a microsecond.  Which calls they take is the contract written in
# fastselu/_backends.py (shared with the Python twin, fastselu/_fastpath.py, and held case by
# case by tests/test_fastpath.py); anything else returns NotImplemented and the front end's
# general path (fastselu/_api.py) handles it, errors included.

cdef object _num_threads = None   # the front end's effective_num_threads


def set_thread_source(fn):
    """Callable returning the thread count for large calls (asked only above the grain)."""
    global _num_threads
    _num_threads = fn


cdef inline int _plain(object a, bint writable):
    """The driver's dtype code (_kind_of) of a plain, C-contiguous, aligned, native float16,
    bfloat16, float32 or float64 array, else 0."""
    if type(a) is not cnp.ndarray:
        return 0
    cdef cnp.ndarray arr = <cnp.ndarray>a
    cdef int need = cnp.NPY_ARRAY_C_CONTIGUOUS | cnp.NPY_ARRAY_ALIGNED
    if writable:
        need |= cnp.NPY_ARRAY_WRITEABLE
    if (cnp.PyArray_FLAGS(arr) & need) != need or not cnp.PyArray_ISNOTSWAPPED(arr):
        return 0
    return _kind_of(arr)


cdef inline bint _same_shape(cnp.ndarray a, cnp.ndarray b):
    cdef int i, nd = cnp.PyArray_NDIM(a)
    if cnp.PyArray_NDIM(b) != nd:
        return False
    for i in range(nd):
        if cnp.PyArray_DIMS(a)[i] != cnp.PyArray_DIMS(b)[i]:
            return False
    return True


cdef inline bint _identical_or_disjoint(cnp.ndarray a, cnp.ndarray b):
    """For C-contiguous arrays of one shape and dtype: element i of both at the same address,
    or no byte shared."""
    cdef char *pa = <char *>cnp.PyArray_DATA(a)
    cdef char *pb = <char *>cnp.PyArray_DATA(b)
    cdef Py_ssize_t nbytes = cnp.PyArray_NBYTES(a)
    return pa == pb or pa + nbytes <= pb or pb + nbytes <= pa


cdef inline Py_ssize_t _nthreads(Py_ssize_t n) except -1:
    if n < 2 * GRAIN or not FS_OPENMP:
        return 1
    return _threads_for(n, _num_threads() if _num_threads is not None else 1)


cdef object _destination(cnp.ndarray xa, int t, object out, cnp.ndarray also):
    """The array a call on `xa` and `also` (an input too, or `xa` again) writes: a new one, or
    `out` where the contract allows; None to decline."""
    if out is None:
        if cnp.PyArray_NDIM(xa) == 0:          # NumPy scalar result: the general path
            return None
        # xa's own dtype: bfloat16 is a user dtype with no fixed typenum to ask for
        return PyArray_NewLikeArray(xa, cnp.NPY_CORDER, NULL, 0)
    if _plain(out, True) != t:
        return None
    cdef cnp.ndarray res = <cnp.ndarray>out
    if (not _same_shape(xa, res) or not _identical_or_disjoint(xa, res)
            or not _identical_or_disjoint(also, res)):
        return None
    return res


cdef object _launch(Kind kind, int t, cnp.ndarray a, cnp.ndarray b, cnp.ndarray res):
    cdef Py_ssize_t n = cnp.PyArray_SIZE(res)
    cdef Py_ssize_t nt = _nthreads(n)
    cdef char *pa = <char *>cnp.PyArray_DATA(a)
    cdef char *pb = <char *>cnp.PyArray_DATA(b)
    cdef char *po = <char *>cnp.PyArray_DATA(res)
    if n > 0:
        _prepare(t)
        with nogil:
            _run(kind, t, pa, pb, po, n, nt)
    return res


def fast_forward(x, out, inplace):
    if type(x) is not cnp.ndarray:   # before the flag's truth value, as in the general path
        return NotImplemented
    cdef bint in_place = inplace
    cdef int t = _plain(x, in_place)
    if t == 0:
        return NotImplemented
    cdef cnp.ndarray xa = <cnp.ndarray>x
    if in_place:
        if out is not None:
            return NotImplemented
        return _launch(KIND_FORWARD, t, xa, xa, xa)
    res = _destination(xa, t, out, xa)
    return NotImplemented if res is None else _launch(KIND_FORWARD, t, xa, xa, res)


def fast_backward(g, x, bint is_result, out):
    cdef int t = _plain(g, False)
    if t == 0 or _plain(x, False) != t:
        return NotImplemented
    cdef cnp.ndarray ga = <cnp.ndarray>g, xa = <cnp.ndarray>x
    if not _same_shape(ga, xa):
        return NotImplemented
    res = _destination(xa, t, out, ga)
    if res is None:
        return NotImplemented
    return _launch(KIND_BACKWARD_Y if is_result else KIND_BACKWARD_X, t, ga, xa, res)
