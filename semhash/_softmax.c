/* The decoder's loss in one pass a row: softmax cross-entropy against sparse targets.
 *
 * For each row of logits z (the decoder's, its bias added here) and its target p (CSR: a few thousand of the vocabulary's
 * words), the loss is  total * logsumexp(z) - sum_w p_w z_w  (total = sum_w p_w), and
 * its gradient  scale * (softmax(z) * total - p).  A row's logits are read once for
 * their maximum and once for their exponentials, which are written back in place and
 * scaled into the gradient: no dense target, no second buffer.  The kernel needs AVX2
 * and FMA (exp() eight at a time); without them semhash computes the loss in torch.
 * One call covers a range of rows and releases the GIL; Python runs one call per core.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_X86 1
#define AVX2 __attribute__((target("avx2,fma")))

/* exp(x) for x <= 0, eight at a time, to about 2 ulp: x = n ln 2 + r with |r| <= ln 2 / 2
 * (ln 2 in two parts, as Cody and Waite do), e^r by a degree-6 minimax polynomial, 2^n
 * put in the exponent bits.  Below -87 the result is 0 to float precision: x is clamped. */
static inline AVX2 __m256 exp8(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    __m256i k = _mm256_cvttps_epi32(
        _mm256_fmsub_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    __m256 n = _mm256_cvtepi32_ps(k);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fmadd_ps(n, _mm256_set1_ps(2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3333519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i two_n = _mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(two_n));
}

/* One row: returns its loss; its v logits z (before the bias b) become its gradient,
 * which is also added to the bias's gradient g. */
static AVX2 float row_loss(float *z, const float *b, float *g, int64_t v, const int32_t *cols,
                           const float *p, int64_t nnz, float scale) {
    int64_t body = v - v % 8, rest = v - body;
    float lanes[8], top = -3.0e38f, total = 0.0f, picked = 0.0f, sum = 0.0f;
    __m256 most = _mm256_set1_ps(-3.0e38f);
    for (int64_t j = 0; j < body; j += 8) {
        __m256 x = _mm256_add_ps(_mm256_loadu_ps(z + j), _mm256_loadu_ps(b + j));
        _mm256_storeu_ps(z + j, x);
        most = _mm256_max_ps(most, x);
    }
    for (int64_t j = body; j < v; j++) z[j] += b[j];
    _mm256_storeu_ps(lanes, most);
    for (int k = 0; k < 8; k++) top = lanes[k] > top ? lanes[k] : top;
    for (int64_t j = body; j < v; j++) top = z[j] > top ? z[j] : top;
    for (int64_t i = 0; i < nnz; i++) total += p[i], picked += p[i] * z[cols[i]];
    /* The last v % 8 logits make one more vector, padded with logits whose exp is 0. */
    float tail[8];
    for (int64_t j = 0; j < 8; j++) tail[j] = j < rest ? z[body + j] : -1.0e30f;
    __m256 shift = _mm256_set1_ps(top), sums = _mm256_setzero_ps();
    for (int64_t j = 0; j < body; j += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(z + j), shift));
        _mm256_storeu_ps(z + j, e);
        sums = _mm256_add_ps(sums, e);
    }
    __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(tail), shift));
    _mm256_storeu_ps(tail, e);
    _mm256_storeu_ps(lanes, _mm256_add_ps(sums, e));
    for (int k = 0; k < 8; k++) sum += lanes[k];
    float factor = scale * total / sum;
    __m256 f = _mm256_set1_ps(factor);
    for (int64_t j = 0; j < body; j += 8)
        _mm256_storeu_ps(z + j, _mm256_mul_ps(f, _mm256_loadu_ps(z + j)));
    for (int64_t j = 0; j < rest; j++) z[body + j] = tail[j] * factor;
    for (int64_t i = 0; i < nnz; i++) z[cols[i]] -= scale * p[i];
    for (int64_t j = 0; j < body; j += 8)
        _mm256_storeu_ps(g + j, _mm256_add_ps(_mm256_loadu_ps(g + j), _mm256_loadu_ps(z + j)));
    for (int64_t j = body; j < v; j++) g[j] += z[j];
    return total * (top + logf(sum)) - picked;
}
#endif

static int supported = 0; /* this CPU has AVX2 and FMA */

/* cross_entropy(logits, bias, bias_grad, indptr, cols, values, start, stop, scale, losses):
 * rows [start, stop).  logits float32 (n, v) without the bias, written over with their
 * gradient; bias float32 (v); bias_grad float32 (v), added to; indptr int64 (n + 1);
 * cols int32; values float32; losses float32 (n). */
static PyObject *cross_entropy(PyObject *self, PyObject *args) {
    Py_buffer zb, bb, gb, ib, cb, vb, lb;
    long long start, stop;
    float scale;
    if (!PyArg_ParseTuple(args, "w*y*w*y*y*y*LLfw*", &zb, &bb, &gb, &ib, &cb, &vb, &start, &stop,
                          &scale, &lb))
        return NULL;
    PyObject *result = NULL;
    int64_t n = lb.len / 4, v = n > 0 ? zb.len / 4 / n : 0;
    const int64_t *indptr = ib.buf;
    const int32_t *cols = cb.buf;
    if (!supported) {
        PyErr_SetString(PyExc_RuntimeError, "cross_entropy: this CPU lacks AVX2 and FMA");
        goto done;
    }
    if (ib.len != 8 * (n + 1) || v * n * 4 != zb.len || bb.len != 4 * v || gb.len != 4 * v || start < 0 || stop > n || start > stop ||
        indptr[n] * 4 > cb.len || indptr[n] * 4 > vb.len) {
        PyErr_SetString(PyExc_ValueError, "cross_entropy: inconsistent buffer sizes or arguments");
        goto done;
    }
    for (int64_t i = indptr[start]; i < indptr[stop]; i++) {
        if (cols[i] < 0 || cols[i] >= v) {
            PyErr_SetString(PyExc_ValueError, "cross_entropy: a target column is out of range");
            goto done;
        }
    }
#ifdef HAVE_X86
    float *z = zb.buf, *out = lb.buf;
    const float *p = vb.buf;
    Py_BEGIN_ALLOW_THREADS
    for (int64_t i = start; i < stop; i++)
        out[i] = row_loss(z + i * v, bb.buf, gb.buf, v, cols + indptr[i], p + indptr[i],
                          indptr[i + 1] - indptr[i], scale);
    Py_END_ALLOW_THREADS
#endif
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&zb), PyBuffer_Release(&bb), PyBuffer_Release(&gb);
    PyBuffer_Release(&ib), PyBuffer_Release(&cb);
    PyBuffer_Release(&vb), PyBuffer_Release(&lb);
    return result;
}

/* supported(): whether this CPU runs the kernel. */
static PyObject *is_supported(PyObject *self, PyObject *args) {
    return PyBool_FromLong(supported);
}

static PyMethodDef methods[] = {
    {"cross_entropy", cross_entropy, METH_VARARGS,
     "Softmax cross-entropy of a range of rows against sparse targets; logits become gradients."},
    {"supported", is_supported, METH_NOARGS, "Whether this CPU runs the kernel (AVX2 and FMA)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_softmax", NULL, -1, methods};

PyMODINIT_FUNC PyInit__softmax(void) {
#ifdef HAVE_X86
    __builtin_cpu_init();
    supported = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return PyModule_Create(&module);
}
