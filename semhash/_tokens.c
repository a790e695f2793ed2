/* Word counting for the vectoriser, in C: tokens looked up in a vocabulary, or
 * collected into a new one.
 *
 * A token is what scikit-learn's default pattern (?u)\b\w\w+\b finds in text.lower():
 * a maximal run of two or more word characters, a word character being what Python's
 * re calls \w (alphanumeric or '_').  ASCII texts are lowered and split here byte by
 * byte; other texts are lowered by str.lower() first (its full case mapping can
 * change lengths) and split by the same rule over code points.  Each token is looked
 * up in an open-addressing table of words: ``Table.count`` skips unknown tokens,
 * ``learn`` adds them, so one pass over a corpus finds every word and its counts.
 * semhash/text.py keeps the same rules in Python and uses them where this is not built.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The words.  Plain malloc throughout: ``learn`` grows a table with the GIL released. */
typedef struct {
    Py_UCS4 *chars;   /* every word's code points, one after another */
    int64_t *starts;  /* word i is chars[starts[i] : starts[i + 1]] */
    int32_t *slots;   /* hash table: word id + 1, 0 where empty */
    uint64_t mask;
    Py_ssize_t n_words, words_cap, chars_cap;
} Words;

typedef struct {
    PyObject_HEAD
    Words words;
} Table;

static inline uint64_t mix(uint64_t h, Py_UCS4 c) { return (h ^ c) * 1099511628211ULL; }
#define SEED 14695981039346656037ULL

static int32_t find(const Words *t, const Py_UCS4 *token, Py_ssize_t length, uint64_t h) {
    for (uint64_t slot = h & t->mask;; slot = (slot + 1) & t->mask) {
        int32_t id = t->slots[slot] - 1;
        if (id < 0) return -1;
        int64_t start = t->starts[id];
        if (t->starts[id + 1] - start == length &&
            memcmp(t->chars + start, token, sizeof(Py_UCS4) * length) == 0)
            return id;
    }
}

static void words_free(Words *t) {
    free(t->chars);
    free(t->starts);
    free(t->slots);
    memset(t, 0, sizeof(Words));
}

static uint64_t hash_of(const Py_UCS4 *chars, Py_ssize_t length) {
    uint64_t h = SEED;
    for (Py_ssize_t j = 0; j < length; j++) h = mix(h, chars[j]);
    return h;
}

/* An empty table with room for ``n`` words of ``total`` code points; -1 when out of memory. */
static int words_init(Words *t, Py_ssize_t n, Py_ssize_t total) {
    uint64_t size = 16;
    while (size < 2 * (uint64_t)n + 1) size <<= 1;
    t->words_cap = n > 16 ? n : 16;
    t->chars_cap = total > 64 ? total : 64;
    t->chars = malloc(sizeof(Py_UCS4) * t->chars_cap);
    t->starts = malloc(sizeof(int64_t) * (t->words_cap + 1));
    t->slots = calloc(size, sizeof(int32_t));
    t->mask = size - 1;
    t->n_words = 0;
    if (!t->chars || !t->starts || !t->slots) return -1;
    t->starts[0] = 0;
    return 0;
}

/* Twice the slots, every word placed again. */
static int rehash(Words *t) {
    uint64_t size = 2 * (t->mask + 1);
    int32_t *slots = calloc(size, sizeof(int32_t));
    if (!slots) return -1;
    free(t->slots);
    t->slots = slots;
    t->mask = size - 1;
    for (Py_ssize_t i = 0; i < t->n_words; i++) {
        uint64_t slot = hash_of(t->chars + t->starts[i], t->starts[i + 1] - t->starts[i]) & t->mask;
        while (t->slots[slot]) slot = (slot + 1) & t->mask;
        t->slots[slot] = (int32_t)i + 1;
    }
    return 0;
}

/* Add a word not yet in the table (hash ``h``): its id, or -1 when out of memory. */
static int32_t insert(Words *t, const Py_UCS4 *token, Py_ssize_t length, uint64_t h) {
    if (t->n_words >= INT32_MAX - 1) return -1;
    if (2 * (uint64_t)(t->n_words + 1) + 1 > t->mask + 1 && rehash(t) < 0) return -1;
    if (t->n_words == t->words_cap) {
        int64_t *grown = realloc(t->starts, sizeof(int64_t) * (2 * t->words_cap + 1));
        if (!grown) return -1;
        t->starts = grown;
        t->words_cap *= 2;
    }
    int64_t at = t->starts[t->n_words];
    if (at + length > t->chars_cap) {
        Py_ssize_t cap = 2 * t->chars_cap + length;
        Py_UCS4 *grown = realloc(t->chars, sizeof(Py_UCS4) * cap);
        if (!grown) return -1;
        t->chars = grown;
        t->chars_cap = cap;
    }
    memcpy(t->chars + at, token, sizeof(Py_UCS4) * length);
    int32_t id = (int32_t)t->n_words++;
    t->starts[id + 1] = at + length;
    uint64_t slot = h & t->mask;
    while (t->slots[slot]) slot = (slot + 1) & t->mask;
    t->slots[slot] = id + 1;
    return id;
}

static void Table_dealloc(Table *self) {
    words_free(&self->words);
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
        total += PyUnicode_GET_LENGTH(w);
    }
    Words *t = &self->words;
    words_free(t);
    if (words_init(t, n, total) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *w = PyList_GET_ITEM(words, i);
        Py_ssize_t length = PyUnicode_GET_LENGTH(w);
        int64_t at = t->starts[i];
        if (!PyUnicode_AsUCS4(w, t->chars + at, length, 0)) return -1;
        uint64_t h = hash_of(t->chars + at, length);
        int repeated = find(t, t->chars + at, length, h) >= 0;
        t->starts[i + 1] = at + length;
        t->n_words = i + 1;
        if (repeated) continue; /* the id stays taken; lookups answer the first */
        uint64_t slot = h & t->mask;
        while (t->slots[slot]) slot = (slot + 1) & t->mask;
        t->slots[slot] = (int32_t)i + 1;
    }
    return 0;
}

/* What a pass over texts found: ids (then counts beside them), the current token, and
 * per word the last text (row + 1) that held it and how often that text did. */
typedef struct {
    int32_t *ids;
    float *counts; /* beside ids once a text is tallied */
    Py_ssize_t fill, cap, counts_cap;
    Py_UCS4 *token;
    Py_ssize_t token_cap;
    int32_t *seen_in;
    float *times;
    Py_ssize_t words_cap;
    int32_t row; /* the text being read, + 1 */
} Found;

/* Room in the per-word arrays for word ``id``. */
static int word_room(Found *f, int32_t id) {
    if (id < f->words_cap) return 0;
    Py_ssize_t cap = 2 * (Py_ssize_t)id + 1024;
    int32_t *seen = realloc(f->seen_in, sizeof(int32_t) * cap);
    if (seen) f->seen_in = seen;
    float *times = realloc(f->times, sizeof(float) * cap);
    if (times) f->times = times;
    if (!seen || !times) return -1;
    memset(f->seen_in + f->words_cap, 0, sizeof(int32_t) * (cap - f->words_cap));
    f->words_cap = cap;
    return 0;
}

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

/* Room for a token of up to ``length`` code points. */
static int token_room(Found *f, Py_ssize_t length) {
    if (length <= f->token_cap) return 0;
    Py_ssize_t cap = length > 2 * f->token_cap ? length : 2 * f->token_cap;
    Py_UCS4 *grown = realloc(f->token, sizeof(Py_UCS4) * cap);
    if (!grown) return -1;
    f->token = grown;
    f->token_cap = cap;
    return 0;
}

/* A whole token: counted, and its id pushed the first time the text has it (added to
 * the table first when ``grow``). */
static int found(Words *t, Found *f, Py_ssize_t length, uint64_t h, int grow) {
    if (length < 2) return 0;
    int32_t id = find(t, f->token, length, h);
    if (id < 0 && grow && (id = insert(t, f->token, length, h)) < 0) return -1;
    if (id < 0) return 0;
    if (word_room(f, id) < 0) return -1;
    if (f->seen_in[id] == f->row) {
        f->times[id] += 1.0f;
        return 0;
    }
    f->seen_in[id] = f->row;
    f->times[id] = 1.0f;
    return push(f, id);
}

/* Tokens of an ASCII text, lowered here. */
static int count_ascii(Words *t, const unsigned char *s, Py_ssize_t n, Found *f, int grow) {
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
            if (i - start >= f->token_cap && token_room(f, i - start + 1) < 0) return -1;
            f->token[i - start] = c;
            h = mix(h, c);
        }
        if (found(t, f, i - start, h, grow) < 0) return -1;
    }
    return 0;
}

static inline int is_word(Py_UCS4 c) { return c == '_' || Py_UNICODE_ISALNUM(c); }

/* Tokens of an already lowered text of any kind (its kind, data and length). */
static int count_lowered(Words *t, int kind, const void *data, Py_ssize_t n, Found *f, int grow) {
    Py_ssize_t i = 0;
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
            if (i - start >= f->token_cap && token_room(f, i - start + 1) < 0) return -1;
            f->token[i - start] = c;
            h = mix(h, c);
        }
        if (found(t, f, i - start, h, grow) < 0) return -1;
    }
    return 0;
}

/* Sort a few ids in place: quicksort down to short runs, then insertion sort. */
static void sort_ids(int32_t *a, Py_ssize_t n) {
    while (n > 16) {
        int32_t x = a[0], y = a[n / 2], z = a[n - 1];
        int32_t pivot = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        Py_ssize_t i = 0, j = n - 1;
        for (;;) {
            while (a[i] < pivot) i++;
            while (a[j] > pivot) j--;
            if (i >= j) break;
            int32_t swap = a[i];
            a[i++] = a[j];
            a[j--] = swap;
        }
        sort_ids(a, j + 1); /* the left part; the right part by the loop */
        a += j + 1;
        n -= j + 1;
    }
    for (Py_ssize_t i = 1; i < n; i++) {
        int32_t v = a[i];
        Py_ssize_t j = i;
        for (; j > 0 && a[j - 1] > v; j--) a[j] = a[j - 1];
        a[j] = v;
    }
}

/* One text's distinct ids, f->ids[start:], sorted, their counts beside them. */
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
    sort_ids(ids, n);
    for (Py_ssize_t i = 0; i < n; i++) f->counts[start + i] = f->times[ids[i]];
    return 0;
}

/* Each text's words in ``t`` (added when ``grow``) as (ids, counts, lengths): each
 * text's distinct ids in increasing order (int32 bytes), how often each occurs (float32
 * bytes), and how many distinct ids each text has (int64 bytes): a CSR matrix's arrays.
 *
 * Texts that are not ASCII are lowered first, holding the GIL; then every text is
 * split and looked up with the GIL released (the strings are immutable and held by the
 * list and by this call), so threads counting different lists run in parallel. */
static PyObject *tokens_of(Words *t, PyObject *texts, int grow) {
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
    Found f = {NULL, NULL, 0, 0, 0, NULL, 0, NULL, NULL, 0, 0};
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    failed = t->n_words && word_room(&f, (int32_t)t->n_words - 1) < 0;
    for (Py_ssize_t row = 0; row < n && !failed; row++) {
        PyObject *text = held[row];
        f.row = (int32_t)row + 1;
        Py_ssize_t before = f.fill, size = PyUnicode_GET_LENGTH(text);
        if (PyUnicode_IS_ASCII(text))
            failed = count_ascii(t, PyUnicode_1BYTE_DATA(text), size, &f, grow);
        else
            failed = count_lowered(t, PyUnicode_KIND(text), PyUnicode_DATA(text), size, &f, grow);
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
    free(f.token);
    free(f.seen_in);
    free(f.times);
done:
    for (Py_ssize_t row = 0; row < n; row++) Py_XDECREF(held[row]);
    PyMem_Free(held);
    Py_DECREF(lengths);
    return result;
}

static PyObject *Table_count(Table *self, PyObject *args) {
    PyObject *texts;
    if (!PyArg_ParseTuple(args, "O!", &PyList_Type, &texts)) return NULL;
    if (!self->words.slots) {
        PyErr_SetString(PyExc_RuntimeError, "the table was not initialised");
        return NULL;
    }
    return tokens_of(&self->words, texts, 0);
}

/* learn(texts) -> (words, ids, counts, lengths): every word of the texts, in the order
 * first met, and each text's counts of them as ``Table.count`` answers. */
static PyObject *learn(PyObject *module, PyObject *args) {
    PyObject *texts;
    if (!PyArg_ParseTuple(args, "O!", &PyList_Type, &texts)) return NULL;
    Words t;
    if (words_init(&t, 0, 0) < 0) {
        words_free(&t);
        return PyErr_NoMemory();
    }
    PyObject *counted = tokens_of(&t, texts, 1), *words = NULL, *result = NULL;
    if (counted && (words = PyList_New(t.n_words))) {
        Py_ssize_t i = 0;
        for (; i < t.n_words; i++) {
            PyObject *w = PyUnicode_FromKindAndData(
                PyUnicode_4BYTE_KIND, t.chars + t.starts[i], t.starts[i + 1] - t.starts[i]);
            if (!w) break;
            PyList_SET_ITEM(words, i, w);
        }
        if (i == t.n_words) result = Py_BuildValue("(OOOO)", words, PyTuple_GET_ITEM(counted, 0),
                                                   PyTuple_GET_ITEM(counted, 1),
                                                   PyTuple_GET_ITEM(counted, 2));
    }
    Py_XDECREF(words);
    Py_XDECREF(counted);
    words_free(&t);
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

static PyMethodDef module_methods[] = {
    {"learn", learn, METH_VARARGS,
     "learn(texts) -> (words, ids, counts, lengths): every word met, in the order met, "
     "and each text's counts of them as Table.count answers."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_tokens", "Word counting in C (semhash/_tokens.c).", -1,
    module_methods,
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
