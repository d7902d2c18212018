/* The graph's two hot loops in C: `record` (every op's output, and its node when an input is
 * tracked) and `sweep` (the backward walk's bookkeeping around each node's rule).
 *
 * Each is a line-by-line translation of the Python function of the same name in gpugrad/graph.py,
 * which stays the reference (and runs where this file cannot be compiled, or GPUGRAD_NATIVE=0):
 * the tests run both and compare. Everything an op or a rule does is still Python; only the
 * bookkeeping around them moves here. Slots of Tensor and Node are read and written at the offsets
 * their member descriptors give, so the classes stay plain Python classes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

static PyTypeObject *Tensor_t, *Node_t;
static PyObject *STATE, *SEQ, *AUTOWATCH, *FALLBACK, *SHAPE_ERROR, *CHECK_VERSIONS;
static PyObject *s_dict, *s_enabled, *s_recording, *s_autowatch, *s_logs, *s_dtype, *s_kind, *s_shape,
    *s_data, *s_is_var, *s_version, *s_astype;
static Py_ssize_t T_data, T_node, T_rg, T_tapes, T_grad;
static Py_ssize_t N_inputs, N_backward, N_fast, N_tapes, N_rg, N_versions, N_freed, N_name, N_seq, N_out;

#define SLOT(o, off) (*(PyObject **)((char *)(o) + (off)))

/* Replace a slot's value (steals a reference to v). */
static inline void put(PyObject *o, Py_ssize_t off, PyObject *v) {
    PyObject *old = SLOT(o, off);
    SLOT(o, off) = v;
    Py_XDECREF(old);
}

/* Fill a slot of a fresh object (takes a new reference to v). */
static inline void init(PyObject *o, Py_ssize_t off, PyObject *v) {
    Py_INCREF(v);
    SLOT(o, off) = v;
}

static inline PyObject *get(PyObject *o, Py_ssize_t off) { /* borrowed; None where unset */
    PyObject *v = SLOT(o, off);
    return v ? v : Py_None;
}

static int offset_of(PyTypeObject *type, const char *name, Py_ssize_t *off) {
    PyObject *d = PyDict_GetItemString(type->tp_dict, name);
    if (d == NULL || !Py_IS_TYPE(d, &PyMemberDescr_Type)) {
        PyErr_Format(PyExc_TypeError, "native engine: %s.%s is not a slot", type->tp_name, name);
        return -1;
    }
    PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
    if (m->type != T_OBJECT_EX) {
        PyErr_Format(PyExc_TypeError, "native engine: %s.%s is not an object slot", type->tp_name, name);
        return -1;
    }
    *off = m->offset;
    return 0;
}

static inline int is_tensor(PyObject *x) {
    return Py_IS_TYPE(x, Tensor_t) || PyObject_TypeCheck(x, Tensor_t);
}

static inline int is_var(PyObject *x) {
    PyObject *v = _PyType_Lookup(Py_TYPE(x), s_is_var);
    return v == Py_True;
}

/* A fresh Tensor of no graph around `data` (Tensor._make). */
static PyObject *make(PyObject *data) {
    PyObject *t = Tensor_t->tp_alloc(Tensor_t, 0);
    if (t == NULL)
        return NULL;
    init(t, T_data, data);
    init(t, T_node, Py_None);
    init(t, T_rg, Py_False);
    init(t, T_tapes, Py_None);
    init(t, T_grad, Py_None);
    return t;
}

static PyObject *py_make(PyObject *self, PyObject *data) { return make(data); }

/* 1 if `a` is a subset of `b` (frozensets), 0 if not, -1 on error */
static inline int subset(PyObject *a, PyObject *b) {
    PyObject *r = PyObject_RichCompare(a, b, Py_LE);
    if (r == NULL)
        return -1;
    int k = PyObject_IsTrue(r);
    Py_DECREF(r);
    return k;
}

/* record(out_data, inputs, backward, name="Op", fast=None) */
static PyObject *record(PyObject *data, PyObject *inputs, PyObject *backward, PyObject *name, PyObject *fast);

static PyObject *py_record(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 3 || nargs > 5) {
        PyErr_SetString(PyExc_TypeError, "record(out_data, inputs, backward, name='Op', fast=None)");
        return NULL;
    }
    return record(args[0], args[1], args[2], nargs > 3 ? args[3] : NULL, nargs > 4 ? args[4] : Py_None);
}

/* dtype.kind of an array's dtype is 'f' (1), something else (0), or an error (-1) */
static int float_kind(PyObject *dt) {
    PyObject *kind = PyObject_GetAttr(dt, s_kind);
    if (kind == NULL)
        return -1;
    const char *k = PyUnicode_AsUTF8(kind);
    int f = k != NULL && k[0] == 'f' && k[1] == 0;
    Py_DECREF(kind);
    return k == NULL ? -1 : f;
}

/* whether an array's dtype is a float one (errors count as no, and are cleared) */
static int holds_floats(PyObject *arr) {
    PyObject *dt = PyObject_GetAttr(arr, s_dtype);
    int f = dt ? float_kind(dt) : -1;
    Py_XDECREF(dt);
    if (f < 0)
        PyErr_Clear();
    return f == 1;
}

static inline int py_number(PyObject *x) { return PyFloat_CheckExact(x) || PyLong_CheckExact(x); }

/* binary(spec, a, b): an arithmetic op's common cases, as the op function of ops/math.py runs them:
 * two Tensors of one array type and one dtype, or a Tensor and a Python number that needs no
 * promotion. spec = (fn, python_op, backward, name, fast, fast_number_second, fast_number_first).
 * Anything else, and any error of fn (a broadcast), goes to python_op, which raises its own message. */
static PyObject *py_binary(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyTuple_Check(args[0]) || PyTuple_GET_SIZE(args[0]) != 7) {
        PyErr_SetString(PyExc_TypeError, "binary(spec, a, b) with spec a 7-tuple");
        return NULL;
    }
    PyObject **spec = &PyTuple_GET_ITEM(args[0], 0);
    PyObject *a = args[1], *b = args[2], *ad, *bd, *fast;
    if (is_tensor(a)) {
        ad = get(a, T_data);
        if (is_tensor(b)) {
            bd = get(b, T_data);
            if (Py_TYPE(ad) != Py_TYPE(bd))
                goto python;
            PyObject *da = PyObject_GetAttr(ad, s_dtype), *db = da ? PyObject_GetAttr(bd, s_dtype) : NULL;
            Py_XDECREF(da);
            Py_XDECREF(db);
            if (db == NULL) {
                PyErr_Clear();
                goto python;
            }
            if (da != db) /* promotion, or two dtype objects that may be equal: the Python op decides */
                goto python;
            fast = spec[4];
        } else if (py_number(b)) {
            bd = b;
            fast = spec[5];
            if (PyFloat_CheckExact(b) && !holds_floats(ad)) /* an integer tensor with a float is promoted */
                goto python;
        } else
            goto python;
    } else if (py_number(a) && is_tensor(b)) {
        ad = a;
        bd = get(b, T_data);
        fast = spec[6];
        if (PyFloat_CheckExact(a) && !holds_floats(bd))
            goto python;
    } else
        goto python;
    {
        PyObject *call[2] = {ad, bd};
        PyObject *out = PyObject_Vectorcall(spec[0], call, 2, NULL);
        if (out == NULL) {
            PyErr_Clear();
            goto python;
        }
        PyObject *inputs = PyTuple_Pack(2, a, b);
        PyObject *t = inputs ? record(out, inputs, spec[2], spec[3], fast) : NULL;
        Py_XDECREF(inputs);
        Py_DECREF(out);
        return t;
    }
python : {
    PyObject *call[2] = {a, b};
    return PyObject_Vectorcall(spec[1], call, 2, NULL);
}
}

static PyObject *record(PyObject *data, PyObject *inputs, PyObject *backward, PyObject *name, PyObject *fast) {
    PyObject *out = make(data);
    if (out == NULL)
        return NULL;
    PyObject *st = PyObject_GetAttr(STATE, s_dict); /* this thread's fields */
    if (st == NULL)
        goto fail;
    PyObject *enabled = PyDict_GetItemWithError(st, s_enabled);
    if (enabled == NULL || !PyObject_IsTrue(enabled)) {
        Py_DECREF(st);
        if (PyErr_Occurred())
            goto fail;
        return out;
    }
    PyObject *rec = PyDict_GetItemWithError(st, s_recording);
    if (rec == NULL) {
        Py_DECREF(st);
        goto fail;
    }
    Py_INCREF(rec); /* held: the autowatch callback below runs Python code */
    PyObject *seq_inputs = PySequence_Fast(inputs, "record: inputs must be a tuple");
    if (seq_inputs == NULL) {
        Py_DECREF(rec);
        Py_DECREF(st);
        goto fail;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq_inputs);
    PyObject **items = PySequence_Fast_ITEMS(seq_inputs);
    int rg = 0, has_var = 0;
    PyObject *seen = NULL, *autowatch = NULL; /* owned */
    if (PyObject_Not(rec)) {
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *x = items[i];
            if (is_tensor(x) && get(x, T_rg) == Py_True) {
                rg = 1;
                break;
            }
        }
        if (!rg)
            goto done_plain;
        for (Py_ssize_t i = 0; i < n; i++) {
            if (is_tensor(items[i]) && is_var(items[i])) {
                has_var = 1;
                break;
            }
        }
    } else {
        autowatch = PyDict_GetItemWithError(st, s_autowatch);
        if (autowatch == NULL)
            goto fail_in;
        Py_INCREF(autowatch);
        int aw = PyObject_IsTrue(autowatch);
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *x = items[i];
            if (!is_tensor(x))
                continue;
            if (get(x, T_rg) == Py_True)
                rg = 1;
            PyObject *t; /* owned */
            if (is_var(x)) {
                has_var = 1;
                if (aw) {
                    t = PyObject_CallFunctionObjArgs(AUTOWATCH, x, autowatch, NULL);
                    if (t == NULL)
                        goto fail_in;
                } else {
                    t = get(x, T_tapes);
                    Py_INCREF(t);
                }
            } else {
                t = get(x, T_tapes);
                Py_INCREF(t);
            }
            if (t != Py_None && PyObject_IsTrue(t)) {
                if (seen == NULL) {
                    seen = t;
                    t = NULL;
                } else if (t != seen) {
                    int k = subset(t, seen);
                    if (k < 0) {
                        Py_DECREF(t);
                        goto fail_in;
                    }
                    if (!k) {
                        PyObject *u = PyNumber_Or(seen, t);
                        if (u == NULL) {
                            Py_DECREF(t);
                            goto fail_in;
                        }
                        Py_SETREF(seen, u);
                    }
                }
            }
            Py_XDECREF(t);
        }
        if (seen != NULL && seen != rec) { /* tapes no longer recording drop out */
            int k = subset(seen, rec);
            if (k < 0)
                goto fail_in;
            if (!k) {
                PyObject *u = PyNumber_And(seen, rec);
                if (u == NULL)
                    goto fail_in;
                Py_SETREF(seen, u);
                if (PyObject_Not(seen))
                    Py_CLEAR(seen);
            }
        }
        if (seen == NULL && !rg)
            goto done_plain;
    }
    { /* integer and bool results are never differentiated */
        PyObject *dt = PyObject_GetAttr(data, s_dtype);
        if (dt == NULL)
            goto fail_in;
        PyObject *kind = PyObject_GetAttr(dt, s_kind);
        Py_DECREF(dt);
        if (kind == NULL)
            goto fail_in;
        const char *k = PyUnicode_AsUTF8(kind);
        int fl = k != NULL && (k[0] == 'f' || k[0] == 'c') && k[1] == 0;
        Py_DECREF(kind);
        if (!fl) {
            if (PyErr_Occurred())
                goto fail_in;
            goto done_plain;
        }
    }
    PyObject *node = Node_t->tp_alloc(Node_t, 0);
    if (node == NULL)
        goto fail_in;
    PyObject *seq = PyIter_Next(SEQ);
    if (seq == NULL) {
        Py_DECREF(node);
        goto fail_in;
    }
    SLOT(node, N_seq) = seq;
    init(node, N_inputs, inputs);
    init(node, N_backward, backward);
    init(node, N_fast, fast);
    PyObject *tapes = seen ? seen : Py_None;
    init(node, N_tapes, tapes);
    PyObject *rgv = rg ? Py_True : Py_False;
    init(node, N_rg, rgv);
    init(node, N_freed, Py_False);
    if (name == NULL)
        name = PyUnicode_FromString("Op");
    else
        Py_INCREF(name);
    if (name == NULL) {
        Py_DECREF(node);
        goto fail_in;
    }
    SLOT(node, N_name) = name;
    init(node, N_versions, Py_None);
    PyObject *oref = PyWeakref_NewRef(out, NULL);
    if (oref == NULL) {
        SLOT(node, N_out) = NULL;
        Py_DECREF(node);
        goto fail_in;
    }
    SLOT(node, N_out) = oref;
    if (seen != NULL) { /* each tape lists its nodes (weakly), to release them when it is released */
        PyObject *logs = PyDict_GetItemWithError(st, s_logs);
        if (logs == NULL) {
            Py_DECREF(node);
            goto fail_in;
        }
        PyObject *ref = PyWeakref_NewRef(node, NULL);
        if (ref == NULL) {
            Py_DECREF(node);
            goto fail_in;
        }
        PyObject *it = PyObject_GetIter(seen), *tid;
        if (it == NULL) {
            Py_DECREF(ref);
            Py_DECREF(node);
            goto fail_in;
        }
        while ((tid = PyIter_Next(it)) != NULL) {
            PyObject *log = PyDict_GetItemWithError(logs, tid);
            Py_DECREF(tid);
            if (log != NULL && PyList_Append(log, ref) < 0)
                break;
            if (log == NULL && PyErr_Occurred())
                break;
        }
        Py_DECREF(it);
        Py_DECREF(ref);
        if (PyErr_Occurred()) {
            Py_DECREF(node);
            goto fail_in;
        }
    }
    if (has_var) {
        PyObject *versions = PyList_New(0);
        if (versions == NULL) {
            Py_DECREF(node);
            goto fail_in;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *v = items[i];
            if (!is_tensor(v) || !is_var(v))
                continue;
            PyObject *ver = PyObject_GetAttr(v, s_version);
            PyObject *pair = ver ? PyTuple_Pack(2, v, ver) : NULL;
            Py_XDECREF(ver);
            if (pair == NULL || PyList_Append(versions, pair) < 0) {
                Py_XDECREF(pair);
                Py_DECREF(versions);
                Py_DECREF(node);
                goto fail_in;
            }
            Py_DECREF(pair);
        }
        put(node, N_versions, versions);
    }
    put(out, T_node, node);
    Py_INCREF(tapes);
    put(out, T_tapes, tapes);
    Py_INCREF(rgv);
    put(out, T_rg, rgv);
done_plain:
    Py_XDECREF(seen);
    Py_XDECREF(autowatch);
    Py_DECREF(rec);
    Py_DECREF(seq_inputs);
    Py_DECREF(st);
    return out;
fail_in:
    Py_XDECREF(seen);
    Py_XDECREF(autowatch);
    Py_DECREF(rec);
    Py_DECREF(seq_inputs);
    Py_DECREF(st);
fail:
    Py_DECREF(out);
    return NULL;
}

/* Node.release: drop what the node keeps for the backward pass */
static void release(PyObject *n) {
    Py_ssize_t offs[4] = {N_inputs, N_backward, N_fast, N_versions};
    for (int i = 0; i < 4; i++) {
        Py_INCREF(Py_None);
        put(n, offs[i], Py_None);
    }
}

/* grads[key] for an id key, borrowed, NULL if absent (error set only on a real error) */
static inline PyObject *dget(PyObject *d, PyObject *k) { return PyDict_GetItemWithError(d, k); }

/* One node of the sweep: its gradient `g` (borrowed), output `t`, node `n`. Returns 0 or -1. */
static int step(PyObject *grads, PyObject *source_ids, PyObject *tape_id, int retain, int arrays,
                PyObject *held, PyObject *t, PyObject *n, PyObject *k, PyObject *g) {
    int found = PySet_Contains(source_ids, k);
    if (found < 0)
        return -1;
    Py_INCREF(g); /* the dict may drop it */
    if (!found && PyDict_DelItem(grads, k) < 0) {
        Py_DECREF(g);
        return -1;
    }
    PyObject *inputs = get(n, N_inputs);
    Py_INCREF(inputs);
    PyObject *mask = NULL, *ids = NULL, *gin = NULL, *gseq = NULL;
    int rc = -1;
    PyObject *sq = PySequence_Fast(inputs, "a node's inputs");
    if (sq == NULL)
        goto out;
    Py_ssize_t m = PySequence_Fast_GET_SIZE(sq);
    PyObject **xs = PySequence_Fast_ITEMS(sq);
    mask = PyList_New(m);
    ids = PyTuple_New(m);
    if (mask == NULL || ids == NULL)
        goto out;
    for (Py_ssize_t i = 0; i < m; i++) {
        PyObject *x = xs[i];
        PyObject *want = Py_False, *id;
        if (is_tensor(x)) {
            id = PyLong_FromVoidPtr(x);
            if (id == NULL)
                goto out;
            int s = PySet_Contains(source_ids, id);
            if (s < 0) {
                Py_DECREF(id);
                goto out;
            }
            PyObject *xn = get(x, T_node);
            if (s)
                want = Py_True;
            else if (xn == Py_None)
                want = Py_False;
            else if (tape_id == Py_None)
                want = get(xn, N_rg);
            else {
                PyObject *tp = get(xn, N_tapes);
                if (tp != Py_None) {
                    int c = PySet_Contains(tp, tape_id);
                    if (c < 0) {
                        Py_DECREF(id);
                        goto out;
                    }
                    want = c ? Py_True : Py_False;
                }
            }
        } else {
            id = PyLong_FromLong(0);
        }
        Py_INCREF(want);
        PyList_SET_ITEM(mask, i, want);
        PyTuple_SET_ITEM(ids, i, id);
    }
    PyObject *versions = get(n, N_versions);
    if (versions != Py_None && PyObject_IsTrue(versions)) {
        PyObject *r = PyObject_CallOneArg(CHECK_VERSIONS, n);
        if (r == NULL)
            goto out;
        Py_DECREF(r);
    }
    if (!arrays) {
        PyObject *a[3] = {g, t, mask};
        gin = PyObject_Vectorcall(get(n, N_backward), a, 3, NULL);
    } else {
        PyObject *fast = get(n, N_fast);
        if (fast != Py_None) {
            PyObject *a[3] = {g, t, mask};
            gin = PyObject_Vectorcall(fast, a, 3, NULL);
            if (gin == Py_None)
                Py_CLEAR(gin);
            else if (gin == NULL)
                goto out;
        }
        if (gin == NULL) {
            PyObject *a[4] = {n, g, t, mask};
            gin = PyObject_Vectorcall(FALLBACK, a, 4, NULL);
        }
    }
    if (gin == NULL)
        goto out;
    gseq = PySequence_Fast(gin, "a backward rule returns a sequence of gradients");
    if (gseq == NULL)
        goto out;
    Py_ssize_t ng = PySequence_Fast_GET_SIZE(gseq);
    PyObject **gs = PySequence_Fast_ITEMS(gseq);
    for (Py_ssize_t i = 0; i < m && i < ng; i++) {
        PyObject *gx = gs[i];
        if (PyList_GET_ITEM(mask, i) != Py_True && !PyObject_IsTrue(PyList_GET_ITEM(mask, i)))
            continue;
        if (gx == Py_None)
            continue;
        PyObject *x = xs[i];
        PyObject *xd = PyObject_GetAttr(x, s_data);
        if (xd == NULL)
            goto out;
        Py_INCREF(gx);
        PyObject *gd = arrays ? (Py_INCREF(gx), gx) : PyObject_GetAttr(gx, s_data);
        PyObject *gdt = gd ? PyObject_GetAttr(gd, s_dtype) : NULL;
        PyObject *xdt = gdt ? PyObject_GetAttr(xd, s_dtype) : NULL;
        int fail = xdt == NULL;
        if (!fail && gdt != xdt) {
            int eq = PyObject_RichCompareBool(gdt, xdt, Py_EQ);
            if (eq < 0)
                fail = 1;
            else if (!eq) { /* the op promoted (mixed dtypes) */
                PyObject *c = PyObject_CallMethodOneArg(gx, s_astype, xdt);
                if (c == NULL)
                    fail = 1;
                else {
                    Py_SETREF(gx, c);
                    Py_SETREF(gd, arrays ? (Py_INCREF(gx), gx) : PyObject_GetAttr(gx, s_data));
                    fail = gd == NULL;
                }
            }
        }
        Py_XDECREF(gdt);
        Py_XDECREF(xdt);
        PyObject *key = PyTuple_GET_ITEM(ids, i);
        PyObject *prev = fail ? NULL : dget(grads, key);
        if (!fail && prev == NULL) {
            if (PyErr_Occurred())
                fail = 1;
            else {
                PyObject *gsh = PyObject_GetAttr(gd, s_shape);
                PyObject *xsh = gsh ? PyObject_GetAttr(xd, s_shape) : NULL;
                int same = xsh ? PyObject_RichCompareBool(gsh, xsh, Py_EQ) : -1;
                Py_XDECREF(gsh);
                Py_XDECREF(xsh);
                if (same < 0)
                    fail = 1;
                else if (!same) {
                    PyObject *r = PyObject_CallFunctionObjArgs(SHAPE_ERROR, n, gd, x, NULL);
                    Py_XDECREF(r); /* raises */
                    fail = 1;
                } else if (PyDict_SetItem(grads, key, gx) < 0 || PyList_Append(held, x) < 0)
                    fail = 1;
            }
        } else if (!fail) {
            PyObject *sum = PyNumber_Add(prev, gx);
            if (sum == NULL || PyDict_SetItem(grads, key, sum) < 0)
                fail = 1;
            Py_XDECREF(sum);
        }
        Py_DECREF(xd);
        Py_XDECREF(gd);
        Py_DECREF(gx);
        if (fail)
            goto out;
    }
    if (!retain) {
        if (tape_id == Py_None) {
            if (get(n, N_rg) == Py_True) {
                Py_INCREF(Py_True);
                put(n, N_freed, Py_True);
                PyObject *tp = get(n, N_tapes);
                if (tp == Py_None || !PyObject_IsTrue(tp))
                    release(n);
            }
        } else { /* the node leaves this graph, and is freed once no graph holds it */
            PyObject *tp = get(n, N_tapes);
            int c = tp == Py_None ? 0 : PySet_Contains(tp, tape_id);
            if (c < 0)
                goto out;
            if (c) {
                PyObject *rest;
                if (PySet_GET_SIZE(tp) > 1) {
                    PyObject *me = PyFrozenSet_New(NULL);
                    if (me == NULL || PySet_Add(me, tape_id) < 0) {
                        Py_XDECREF(me);
                        goto out;
                    }
                    rest = PyNumber_Subtract(tp, me);
                    Py_DECREF(me);
                    if (rest == NULL)
                        goto out;
                } else {
                    rest = Py_None;
                    Py_INCREF(rest);
                }
                put(n, N_tapes, rest);
                if (rest == Py_None && get(n, N_rg) != Py_True)
                    release(n);
            }
        }
    }
    rc = 0;
out:
    Py_XDECREF(gseq);
    Py_XDECREF(gin);
    Py_XDECREF(mask);
    Py_XDECREF(ids);
    Py_XDECREF(sq);
    Py_DECREF(inputs);
    Py_DECREF(g);
    return rc;
}

/* sweep(grads, source_ids, tape_id, retain, arrays, held, log, order): the loop of graph._sweep.
 * `log` (a tape's list of weak references to its nodes) or `order` (a list of (output, node) pairs,
 * last made first) gives the nodes. */
static PyObject *py_sweep(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "sweep takes 8 arguments");
        return NULL;
    }
    PyObject *grads = args[0], *source_ids = args[1], *tape_id = args[2], *held = args[5], *log = args[6],
             *order = args[7];
    int retain = PyObject_IsTrue(args[3]), arrays = PyObject_IsTrue(args[4]);
    if (!PyDict_Check(grads) || !PyList_Check(held) || !PyAnySet_Check(source_ids)) {
        PyErr_SetString(PyExc_TypeError, "sweep: grads must be a dict, held a list, source_ids a set");
        return NULL;
    }
    int from_log = log != Py_None;
    PyObject *seq = from_log ? log : order;
    if (!PyList_Check(seq)) {
        PyErr_SetString(PyExc_TypeError, "sweep: the log or the order must be a list");
        return NULL;
    }
    Py_INCREF(seq);
    Py_ssize_t len = PyList_GET_SIZE(seq); /* nodes appended while sweeping are not visited */
    for (Py_ssize_t j = len - 1; j >= 0; j--) {
        Py_ssize_t idx = from_log ? j : len - 1 - j;
        if (idx >= PyList_GET_SIZE(seq))
            continue;
        PyObject *item = PyList_GET_ITEM(seq, idx);
        PyObject *t, *n;
        if (from_log) {
            if (!PyWeakref_CheckRef(item)) {
                PyErr_SetString(PyExc_TypeError, "sweep: the log holds something other than weak references");
                goto fail;
            }
            n = PyWeakref_GetObject(item);
            if (n == Py_None)
                continue;
            if (!Py_IS_TYPE(n, Node_t)) {
                PyErr_SetString(PyExc_TypeError, "sweep: the log holds something other than nodes");
                goto fail;
            }
            PyObject *tp = get(n, N_tapes);
            if (tp == Py_None || get(n, N_inputs) == Py_None)
                continue;
            int c = PySet_Contains(tp, tape_id);
            if (c < 0)
                goto fail;
            if (!c)
                continue;
            PyObject *oref = SLOT(n, N_out);
            if (oref == NULL || !PyWeakref_CheckRef(oref))
                continue;
            t = PyWeakref_GetObject(oref);
            if (t == Py_None)
                continue;
        } else {
            if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
                PyErr_SetString(PyExc_TypeError, "sweep: the order holds (output, node) pairs");
                goto fail;
            }
            t = PyTuple_GET_ITEM(item, 0);
            n = PyTuple_GET_ITEM(item, 1);
        }
        Py_INCREF(t);
        Py_INCREF(n);
        PyObject *k = PyLong_FromVoidPtr(t);
        PyObject *g = k ? dget(grads, k) : NULL;
        int r = 0;
        if (g != NULL)
            r = step(grads, source_ids, tape_id, retain, arrays, held, t, n, k, g);
        else if (PyErr_Occurred())
            r = -1;
        Py_XDECREF(k);
        Py_DECREF(n);
        Py_DECREF(t);
        if (r < 0)
            goto fail;
    }
    Py_DECREF(seq);
    Py_RETURN_NONE;
fail:
    Py_DECREF(seq);
    return NULL;
}

static PyObject *py_setup(PyObject *self, PyObject *args) {
    PyObject *tensor, *node;
    if (!PyArg_ParseTuple(args, "O!O!OOOOOO", &PyType_Type, &tensor, &PyType_Type, &node, &STATE, &SEQ,
                          &AUTOWATCH, &FALLBACK, &SHAPE_ERROR, &CHECK_VERSIONS))
        return NULL;
    Tensor_t = (PyTypeObject *)tensor;
    Node_t = (PyTypeObject *)node;
    Py_INCREF(tensor);
    Py_INCREF(node);
    Py_INCREF(STATE);
    Py_INCREF(SEQ);
    Py_INCREF(AUTOWATCH);
    Py_INCREF(FALLBACK);
    Py_INCREF(SHAPE_ERROR);
    Py_INCREF(CHECK_VERSIONS);
    if (offset_of(Tensor_t, "data", &T_data) || offset_of(Tensor_t, "_node", &T_node) ||
        offset_of(Tensor_t, "_rg", &T_rg) || offset_of(Tensor_t, "_tapes", &T_tapes) ||
        offset_of(Tensor_t, "_grad", &T_grad) || offset_of(Node_t, "inputs", &N_inputs) ||
        offset_of(Node_t, "backward", &N_backward) || offset_of(Node_t, "fast", &N_fast) ||
        offset_of(Node_t, "tapes", &N_tapes) || offset_of(Node_t, "rg", &N_rg) ||
        offset_of(Node_t, "versions", &N_versions) || offset_of(Node_t, "freed", &N_freed) ||
        offset_of(Node_t, "name", &N_name) || offset_of(Node_t, "seq", &N_seq) || offset_of(Node_t, "out", &N_out))
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"setup", py_setup, METH_VARARGS, "bind the Tensor and Node classes and the graph's state"},
    {"make", py_make, METH_O, "Tensor._make"},
    {"record", (PyCFunction)(void (*)(void))py_record, METH_FASTCALL, "graph.record"},
    {"sweep", (PyCFunction)(void (*)(void))py_sweep, METH_FASTCALL, "the loop of graph._sweep"},
    {"binary", (PyCFunction)(void (*)(void))py_binary, METH_FASTCALL, "an arithmetic op's common cases"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "gpugrad_engine", NULL, -1, methods, NULL, NULL, NULL, NULL};

#define INTERN(var, s)                                                                                             \
    if ((var = PyUnicode_InternFromString(s)) == NULL)                                                             \
        return NULL;

PyMODINIT_FUNC PyInit_gpugrad_engine(void) {
    INTERN(s_dict, "__dict__");
    INTERN(s_enabled, "enabled");
    INTERN(s_recording, "recording");
    INTERN(s_autowatch, "autowatch");
    INTERN(s_logs, "logs");
    INTERN(s_dtype, "dtype");
    INTERN(s_kind, "kind");
    INTERN(s_shape, "shape");
    INTERN(s_data, "data");
    INTERN(s_is_var, "_is_var");
    INTERN(s_version, "_version");
    INTERN(s_astype, "astype");
    return PyModule_Create(&module);
}
