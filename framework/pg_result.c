/*
 * pg_result.c - reading query results: the sq_pg_result accessors and their JSON mapping
 * (squall.h, "PostgreSQL").
 *
 * An sq_pg_result is libpq's PGresult itself; pg_result_keep hands it to the running
 * coroutine's arena, which PQclear()s it when the coroutine ends. Every accessor checks its indices
 * itself: libpq's would report a bad one through the notice processor.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

#include <libpq-fe.h>

#include "async.h"
#include "pg_private.h"
#include "request.h"
#include "squall.h"

/* Type OIDs (PostgreSQL's catalog/pg_type_d.h, which is not part of libpq's headers). */
enum {
    OID_BOOL = 16,
    OID_INT8 = 20,
    OID_INT2 = 21,
    OID_INT4 = 23,
    OID_OID = 26,
    OID_JSON = 114,
    OID_FLOAT4 = 700,
    OID_FLOAT8 = 701,
    OID_NUMERIC = 1700,
    OID_JSONB = 3802,
};

static void result_free(void *res)
{
    PQclear(res);
}

int pg_result_keep(PGresult *res)
{
    if (arena_defer(coro_arena(), result_free, res) == 0)
        return 0;
    PQclear(res);
    return -1;
}

static const PGresult *pgres(const sq_pg_result *res)
{
    return (const PGresult *)res;
}

static bool cell_ok(const sq_pg_result *res, int row, int col)
{
    return res && row >= 0 && row < PQntuples(pgres(res)) && col >= 0 &&
           col < PQnfields(pgres(res));
}

int sq_pg_ntuples(const sq_pg_result *res)
{
    return res ? PQntuples(pgres(res)) : 0;
}

int sq_pg_nfields(const sq_pg_result *res)
{
    return res ? PQnfields(pgres(res)) : 0;
}

const char *sq_pg_fname(const sq_pg_result *res, int col)
{
    return res && col >= 0 && col < PQnfields(pgres(res)) ? PQfname(pgres(res), col) : NULL;
}

const char *sq_pg_value(const sq_pg_result *res, int row, int col)
{
    return cell_ok(res, row, col) ? PQgetvalue(pgres(res), row, col) : NULL;
}

int sq_pg_isnull(const sq_pg_result *res, int row, int col)
{
    return cell_ok(res, row, col) ? PQgetisnull(pgres(res), row, col) : 1;
}

const char *sq_pg_cmd_tuples(const sq_pg_result *res)
{
    return res ? PQcmdTuples((PGresult *)pgres(res)) : "";
}

/* An integer column's text as a JSON integer; NULL when it does not parse (never, from
   the server). */
static json_t *int_json(const char *v)
{
    char *end;

    errno = 0;
    long long n = strtoll(v, &end, 10);
    return errno == 0 && end != v && *end == '\0' ? json_integer((json_int_t)n) : NULL;
}

/* A float column's text as a JSON real; NaN and the infinities have no JSON number, so
   they (and anything unparsable) stay text. */
static json_t *float_json(const char *v)
{
    char *end;
    double d = strtod(v, &end);

    return end != v && *end == '\0' && isfinite(d) ? json_real(d) : NULL;
}

/* One value by its column's type; see sq_pg_row_json. NULL on out-of-memory or text that
   is not UTF-8. */
static json_t *cell_json(const PGresult *r, int row, int col)
{
    const char *v = PQgetvalue(r, row, col);
    json_t *j = NULL;

    if (PQgetisnull(r, row, col))
        return json_null();
    switch (PQftype(r, col)) {
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
    case OID_OID: j = int_json(v); break;
    case OID_FLOAT4:
    case OID_FLOAT8: j = float_json(v); break;
    case OID_BOOL: return json_boolean(v[0] == 't');
    case OID_JSON:
    case OID_JSONB: j = json_loads(v, JSON_DECODE_ANY, NULL); break;
    case OID_NUMERIC: /* text: a double would lose digits */
    default: break;
    }
    return j ? j : json_stringn(v, (size_t)PQgetlength(r, row, col));
}

json_t *sq_pg_row_json(const sq_pg_result *res, int row)
{
    const PGresult *r = pgres(res);
    json_t *obj;

    if (!res || row < 0 || row >= PQntuples(r)) {
        errmsg_set("sq_pg_row_json: no row %d", row);
        return NULL;
    }
    if (!(obj = json_object()))
        goto out_of_memory;
    for (int col = 0; col < PQnfields(r); col++) {
        json_t *v = cell_json(r, row, col);
        if (!v) {
            json_decref(obj);
            errmsg_set("sq_pg_row_json: column %s: out of memory or not UTF-8", PQfname(r, col));
            return NULL;
        }
        if (json_object_set_new(obj, PQfname(r, col), v) < 0) {
            json_decref(obj);
            goto out_of_memory;
        }
    }
    return obj;

out_of_memory:
    errmsg_set("sq_pg_row_json: out of memory");
    return NULL;
}

json_t *sq_pg_rows_json(const sq_pg_result *res)
{
    json_t *rows = json_array();
    int n = sq_pg_ntuples(res);

    for (int i = 0; rows && i < n; i++) {
        json_t *row = sq_pg_row_json(res, i);
        if (!row || json_array_append_new(rows, row) < 0) {
            json_decref(rows);
            return NULL;
        }
    }
    if (!rows)
        errmsg_set("sq_pg_rows_json: out of memory");
    return rows;
}
