/* Word counting for the vectoriser: tokens looked up in a fixed vocabulary, in C.
 *
 * A token is what scikit-learn's default pattern (?u)\b\w\w+\b finds in text.lower():
 * a maximal run of two or more word characters, a word character being what Python's
 * re calls \w (alphanumeric or '_').  ASCII texts are lowered and split here byte by
 * byte; other texts are lowered by str.lower() first (its full case mapping can
 * change lengths) and split by the same rule over code points.  Each token is looked
 * up in an open-addressing table of the vocabulary's words; unknown tokens are skipped.
 * semhash/text.py keeps the same rule in Python and uses it where this is not built.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    PyObject_HEAD
    Py_UCS4 *chars;   /* every word's code points, one after another */
    int64_t *starts;  /* word i is chars[starts[i] : starts[i + 1]] */
    int32_t *slots;   /* hash table: word id + 1, 0 where empty */
    uint64_t mask;
    Py_ssize_t n_words;
} Table;

#define MAX_TOKEN 256 /* longest word the table holds; longer tokens are never looked up */

static inline uint64_t mix(uint64_t h, Py_UCS4 c) { return (h ^ c) * 1099511628211ULL; }
#define SEED 14695981039346656037ULL

static int32_t find(const Table *t, const Py_UCS4 *token, Py_ssize_t length, uint64_t h) {
    for (uint64_t slot = h & t->mask;; slot = (slot + 1) & t->mask) {
        int32_t id = t->slots[slot] - 1;
        if (id < 0) return -1;
        int64_t start = t->starts[id];
        if (t->starts[id + 1] - start == length &&
            memcmp(t->chars + start, token, sizeof(Py_UCS4) * length) == 0)
            return id;
    }
}

static void Table_dealloc(Table *self) {
    PyMem_Free(self->chars);
    PyMem_Free(self->starts);
    PyMem_Free(self->slots);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Table_init(Table *self, PyObject *args, PyObject *kwargs) {
    PyObject *words;
    if (!PyArg_ParseTuple(args, "O!", &PyList_Type, &words)) return -1;
    Py_ssize_t n = PyList_GET_SIZE(words), total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *w = PyList_GET_ITEM(words, i);
        if (!PyUnicode_Check(w)) {
            PyErr_SetString(PyExc_TypeError, "the vocabulary must be a list of str");
            return -1;
        }
        if (PyUnicode_GET_LENGTH(w) > MAX_TOKEN) {
            PyErr_SetString(PyExc_ValueError, "a vocabulary word is too long for the table");
            return -1;
        }
        total += PyUnicode_GET_LENGTH(w);
    }
    PyMem_Free(self->chars);
    PyMem_Free(self->starts);
    PyMem_Free(self->slots);
    uint64_t size = 16;
    while (size < 2 * (uint64_t)n + 1) size <<= 1;
    self->chars = PyMem_Malloc(sizeof(Py_UCS4) * (total + 1));
    self->starts = PyMem_Malloc(sizeof(int64_t) * (n + 1));
    self->slots = PyMem_Calloc(size, sizeof(int32_t));
    if (!self->chars || !self->starts || !self->slots) {
        PyErr_NoMemory();
        return -1;
    }
    self->mask = size - 1;
    self->n_words = n;
    int64_t at = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *w = PyList_GET_ITEM(words, i);
        Py_ssize_t length = PyUnicode_GET_LENGTH(w);
        self->starts[i] = at;
        if (!PyUnicode_AsUCS4(w, self->chars + at, length, 0)) return -1;
        uint64_t h = SEED;
        for (Py_ssize_t j = 0; j < length; j++) h = mix(h, self->chars[at + j]);
        at += length;
        self->starts[i + 1] = at;
        if (find(self, self->chars + self->starts[i], length, h) >= 0) continue; /* repeated */
        uint64_t slot = h & self->mask;
        while (self->slots[slot]) slot = (slot + 1) & self->mask;
        self->slots[slot] = (int32_t)i + 1;
    }
    return 0;
}

typedef struct {
    int32_t *ids;
    float *counts; /* beside ids once a text is tallied */
    Py_ssize_t fill, cap, counts_cap;
} Found;

static int push(Found *f, int32_t id) {
    if (f->fill == f->cap) {
        Py_ssize_t cap = f->cap ? 2 * f->cap : 4096;
        int32_t *grown = realloc(f->ids, sizeof(int32_t) * cap);
        if (!grown) return -1;
        f->ids = grown;
        f->cap = cap;
    }
    f->ids[f->fill++] = id;
    return 0;
}


/* Tokens of an ASCII text, lowered here. */
static int count_ascii(const Table *t, const unsigned char *s, Py_ssize_t n, Found *f) {
    Py_UCS4 token[MAX_TOKEN];
    Py_ssize_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        int word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '_';
        if (!word) {
            i++;
            continue;
        }
        Py_ssize_t start = i;
        uint64_t h = SEED;
        for (; i < n; i++) {
            c = s[i];
            if (c >= 'A' && c <= 'Z') c += 'a' - 'A';
            else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) break;
            if (i - start < MAX_TOKEN) token[i - start] = c;
            h = mix(h, c);
        }
        Py_ssize_t length = i - start;
        if (length < 2 || length > MAX_TOKEN) continue; /* no vocabulary word is that long */
        int32_t id = find(t, token, length, h);
        if (id >= 0 && push(f, id) < 0) return -1;
    }
    return 0;
}

static inline int is_word(Py_UCS4 c) { return c == '_' || Py_UNICODE_ISALNUM(c); }

static int by_id(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* One text's ids, f->ids[start:], sorted and made unique, their counts beside them. */
static int tally(Found *f, Py_ssize_t start) {
    Py_ssize_t n = f->fill - start;
    if (n == 0) return 0;
    if (f->cap > f->counts_cap) {
        float *grown = realloc(f->counts, sizeof(float) * f->cap);
        if (!grown) return -1;
        f->counts = grown;
        f->counts_cap = f->cap;
    }
    int32_t *ids = f->ids + start;
    float *counts = f->counts + start;
    qsort(ids, n, sizeof(int32_t), by_id);
    Py_ssize_t unique = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (unique && ids[unique - 1] == ids[i]) {
            counts[unique - 1] += 1.0f;
        } else {
            ids[unique] = ids[i];
            counts[unique++] = 1.0f;
        }
    }
    f->fill = start + unique;
    return 0;
}

/* Tokens of an already lowered text of any kind (its kind, data and length). */
static int count_lowered(const Table *t, int kind, const void *data, Py_ssize_t n, Found *f) {
    Py_ssize_t i = 0;
    Py_UCS4 token[MAX_TOKEN];
    while (i < n) {
        if (!is_word(PyUnicode_READ(kind, data, i))) {
            i++;
            continue;
        }
        Py_ssize_t start = i;
        uint64_t h = SEED;
        for (; i < n; i++) {
            Py_UCS4 c = PyUnicode_READ(kind, data, i);
            if (!is_word(c)) break;
            if (i - start < MAX_TOKEN) token[i - start] = c;
            h = mix(h, c);
        }
        Py_ssize_t length = i - start;
        if (length < 2 || length > MAX_TOKEN) continue;
        int32_t id = find(t, token, length, h);
        if (id >= 0 && push(f, id) < 0) return -1;
    }
    return 0;
}

/* count(texts) -> (ids, counts, lengths): each text's distinct vocabulary ids in
 * increasing order (int32 bytes), how often each occurs (float32 bytes), and how many
 * distinct ids each text has (int64 bytes): the arrays of a CSR matrix.
 *
 * Texts that are not ASCII are lowered first, holding the GIL; then every text is
 * split and looked up with the GIL released (the strings are immutable and held by the
 * list and by this call), so threads counting different lists run in parallel. */
static PyObject *Table_count(Table *self, PyObject *args) {
    PyObject *texts;
    if (!PyArg_ParseTuple(args, "O!", &PyList_Type, &texts)) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(texts);
    PyObject *lengths = PyBytes_FromStringAndSize(NULL, sizeof(int64_t) * n);
    PyObject **held = PyMem_Calloc(n ? n : 1, sizeof(PyObject *));
    if (!lengths || !held) {
        Py_XDECREF(lengths);
        PyMem_Free(held);
        return PyErr_NoMemory();
    }
    PyObject *result = NULL;
    for (Py_ssize_t row = 0; row < n; row++) {
        PyObject *text = PyList_GET_ITEM(texts, row);
        if (!PyUnicode_Check(text)) {
            PyErr_Format(PyExc_TypeError, "text %zd is not a str", row);
            goto done;
        }
        if (PyUnicode_IS_ASCII(text)) {
            Py_INCREF(text);
            held[row] = text;
        } else if (!(held[row] = PyObject_CallMethod(text, "lower", NULL))) {
            goto done;
        }
    }
    int64_t *length_of = (int64_t *)PyBytes_AS_STRING(lengths);
    Found f = {NULL, NULL, 0, 0, 0};
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t row = 0; row < n && !failed; row++) {
        PyObject *text = held[row];
        Py_ssize_t before = f.fill, size = PyUnicode_GET_LENGTH(text);
        if (PyUnicode_IS_ASCII(text))
            failed = count_ascii(self, PyUnicode_1BYTE_DATA(text), size, &f);
        else
            failed = count_lowered(self, PyUnicode_KIND(text), PyUnicode_DATA(text), size, &f);
        failed = failed || tally(&f, before);
        length_of[row] = f.fill - before;
    }
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_NoMemory();
    } else {
        PyObject *ids = PyBytes_FromStringAndSize((const char *)f.ids, sizeof(int32_t) * f.fill);
        PyObject *counts = PyBytes_FromStringAndSize((const char *)f.counts, sizeof(float) * f.fill);
        if (ids && counts) result = Py_BuildValue("(NNO)", ids, counts, lengths);
        else {
            Py_XDECREF(ids);
            Py_XDECREF(counts);
        }
    }
    free(f.ids);
    free(f.counts);
done:
    for (Py_ssize_t row = 0; row < n; row++) Py_XDECREF(held[row]);
    PyMem_Free(held);
    Py_DECREF(lengths);
    return result;
}

static PyMethodDef Table_methods[] = {
    {"count", (PyCFunction)Table_count, METH_VARARGS,
     "count(texts) -> (ids, counts, lengths): each text's distinct vocabulary ids, "
     "increasing (int32 bytes), their counts (float32 bytes) and how many a text has "
     "(int64 bytes)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject TableType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "semhash._tokens.Table",
    .tp_basicsize = sizeof(Table),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Table(vocabulary): looks the tokens of texts up in a list of words.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Table_init,
    .tp_dealloc = (destructor)Table_dealloc,
    .tp_methods = Table_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_tokens", "Word counting in C (semhash/_tokens.c).", -1, NULL,
};

PyMODINIT_FUNC PyInit__tokens(void) {
    if (PyType_Ready(&TableType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&TableType);
    if (PyModule_AddObject(m, "Table", (PyObject *)&TableType) < 0) {
        Py_DECREF(&TableType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
