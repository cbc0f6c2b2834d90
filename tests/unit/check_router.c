/*
 * check_router.c - unit tests for framework/router.c.
 */
#include "router.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../check_main.h"

static struct router *R;
static void *data;
static struct route_params params;
static char allow[128];

static void setup(void)
{
    R = router_new();
    data = NULL;
    memset(&params, 0xa5, sizeof(params));
    memset(allow, 0, sizeof(allow));
}

static void teardown(void)
{
    router_free(R);
    R = NULL;
}

/* Adds a route that must be accepted; the data is the pattern itself unless given. */
static void add_data(const char *method, const char *pattern, const char *tag)
{
    char err[256] = "";
    int rc = router_add(R, method, pattern, (void *)tag, err, sizeof(err));
    ck_assert_msg(rc == 0, "router_add(%s %s) failed: %s", method, pattern, err);
}

static void add(const char *method, const char *pattern)
{
    add_data(method, pattern, pattern);
}

/* Adds a route that must be refused, and returns the message. */
static const char *add_fails(const char *method, const char *pattern)
{
    static char err[256];
    strcpy(err, "unset");
    int rc = router_add(R, method, pattern, (void *)"x", err, sizeof(err));
    ck_assert_msg(rc == -1, "router_add(%s %s) was accepted", method, pattern);
    ck_assert_str_ne(err, "unset");
    ck_assert_str_ne(err, "");
    return err;
}

static enum router_result match(const char *method, const char *path)
{
    data = NULL;
    return router_match(R, method, strlen(method), path, strlen(path), &data, &params, allow,
                        sizeof(allow));
}

/* path must route, for method, to the route whose tag is want. */
static void expect(const char *method, const char *path, const char *want)
{
    enum router_result res = match(method, path);
    ck_assert_msg(res == ROUTER_FOUND, "%s %s: result %d, want FOUND", method, path, res);
    ck_assert_str_eq((const char *)data, want);
}

static void expect_404(const char *method, const char *path)
{
    enum router_result res = match(method, path);
    ck_assert_msg(res == ROUTER_NOT_FOUND, "%s %s: result %d, want NOT_FOUND", method, path,
                  res);
    ck_assert_uint_eq(params.n, 0);
}

static void expect_405(const char *method, const char *path, const char *want_allow)
{
    enum router_result res = match(method, path);
    ck_assert_msg(res == ROUTER_METHOD_NOT_ALLOWED, "%s %s: result %d, want 405", method, path,
                  res);
    ck_assert_str_eq(allow, want_allow);
}

static void expect_param(size_t i, const char *name, const char *value)
{
    ck_assert_uint_lt(i, params.n);
    ck_assert_str_eq(params.p[i].name, name);
    ck_assert_msg(params.p[i].len == strlen(value) && !memcmp(params.p[i].value, value,
                                                              params.p[i].len),
                  "param %zu: got \"%.*s\", want \"%s\"", i, (int)params.p[i].len,
                  params.p[i].value, value);
}

START_TEST(test_static)
{
    add("GET", "/");
    add("GET", "/users");
    add("GET", "/users/new");
    add("GET", "/a/b/c");
    expect("GET", "/", "/");
    expect("GET", "/users", "/users");
    expect("GET", "/users/new", "/users/new");
    expect("GET", "/a/b/c", "/a/b/c");
    ck_assert_uint_eq(params.n, 0);
    expect_404("GET", "/user");
    expect_404("GET", "/usersx");
    expect_404("GET", "/a/b");
    expect_404("GET", "/a/b/c/d");
    expect_404("GET", "");
    expect_404("GET", "users");
    expect_404("GET", "//");
}
END_TEST

START_TEST(test_string_param)
{
    add("GET", "/users/{id}");
    expect("GET", "/users/abc", "/users/{id}");
    ck_assert_uint_eq(params.n, 1);
    expect_param(0, "id", "abc");
    expect("GET", "/users/a%2Fb", "/users/{id}");
    expect_param(0, "id", "a%2Fb");
    expect_404("GET", "/users/");
    expect_404("GET", "/users");
    expect_404("GET", "/users/a/b");
    expect_404("GET", "/users//");
}
END_TEST

START_TEST(test_int_param)
{
    static const char *good[] = {"0", "7", "-5", "007", "-0", "9223372036854775807",
                                 "-9223372036854775808", "00000000000000000000000042"};
    static const char *bad[] = {"", "-", "+5", "1a", "a1", "--1", "1-", " 1", "1.5",
                                "9223372036854775808", "-9223372036854775809",
                                "99999999999999999999"};
    char path[64];

    add("GET", "/n/{v:int}");
    for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
        snprintf(path, sizeof(path), "/n/%s", good[i]);
        expect("GET", path, "/n/{v:int}");
        expect_param(0, "v", good[i]);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        snprintf(path, sizeof(path), "/n/%s", bad[i]);
        expect_404("GET", path);
    }
}
END_TEST

START_TEST(test_path_param)
{
    add("GET", "/static/{rest:path}");
    expect("GET", "/static/", "/static/{rest:path}");
    ck_assert_uint_eq(params.n, 1);
    expect_param(0, "rest", "");
    expect("GET", "/static/a", "/static/{rest:path}");
    expect_param(0, "rest", "a");
    expect("GET", "/static/a/b/c.css", "/static/{rest:path}");
    expect_param(0, "rest", "a/b/c.css");
    expect("GET", "/static/a//b/", "/static/{rest:path}");
    expect_param(0, "rest", "a//b/");
    expect_404("GET", "/static");
    expect_404("GET", "/staticx/a");
}
END_TEST

START_TEST(test_root_path_param)
{
    add("GET", "/{all:path}");
    expect("GET", "/", "/{all:path}");
    expect_param(0, "all", "");
    expect("GET", "/x/y", "/{all:path}");
    expect_param(0, "all", "x/y");
    expect_404("GET", "");
}
END_TEST

START_TEST(test_many_params)
{
    add("GET", "/u/{uid:int}/posts/{slug}/{rest:path}");
    expect("GET", "/u/42/posts/hello/a/b", "/u/{uid:int}/posts/{slug}/{rest:path}");
    ck_assert_uint_eq(params.n, 3);
    expect_param(0, "uid", "42");
    expect_param(1, "slug", "hello");
    expect_param(2, "rest", "a/b");
    add("GET", "/m/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}");
    expect("GET", "/m/1/2/3/4/5/6/7/8", "/m/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}");
    ck_assert_uint_eq(params.n, 8);
    expect_param(0, "a", "1");
    expect_param(7, "h", "8");
    expect_404("GET", "/m/1/2/3/4/5/6/7/8/9");
}
END_TEST

START_TEST(test_static_wins)
{
    add("GET", "/users/{id}");
    add("GET", "/users/new");
    add("GET", "/users/{n:int}");
    expect("GET", "/users/new", "/users/new");
    ck_assert_uint_eq(params.n, 0);
    expect("GET", "/users/bob", "/users/{id}");
    expect("GET", "/users/12", "/users/{n:int}");
}
END_TEST

START_TEST(test_priority_order)
{
    add("GET", "/i/{p:path}");
    add("GET", "/i/{s}");
    add("GET", "/i/{n:int}");
    expect("GET", "/i/5", "/i/{n:int}");
    expect_param(0, "n", "5");
    expect("GET", "/i/-3", "/i/{n:int}");
    expect("GET", "/i/x", "/i/{s}");
    expect_param(0, "s", "x");
    expect("GET", "/i/x/y", "/i/{p:path}");
    expect_param(0, "p", "x/y");
    expect("GET", "/i/", "/i/{p:path}");
    expect_param(0, "p", "");
}
END_TEST

START_TEST(test_backtracking)
{
    add("GET", "/a/{x}/c");
    add("GET", "/a/b/d");
    expect("GET", "/a/b/c", "/a/{x}/c");
    ck_assert_uint_eq(params.n, 1);
    expect_param(0, "x", "b");
    expect("GET", "/a/b/d", "/a/b/d");
    ck_assert_uint_eq(params.n, 0);

    /* int then string: the int's value must not linger */
    add("GET", "/b/{n:int}/x");
    add("GET", "/b/{s}/y");
    expect("GET", "/b/5/y", "/b/{s}/y");
    ck_assert_uint_eq(params.n, 1);
    expect_param(0, "s", "5");

    /* a failed deeper parameter must be popped too */
    add("GET", "/e/{a:int}/{b}/z");
    add("GET", "/e/{c}/w");
    expect("GET", "/e/5/w", "/e/{c}/w");
    ck_assert_uint_eq(params.n, 1);
    expect_param(0, "c", "5");

    /* down to {:path} after a deeper failure */
    add("GET", "/c/{s}/z/{t}");
    add("GET", "/c/{p:path}");
    expect("GET", "/c/q/z", "/c/{p:path}");
    ck_assert_uint_eq(params.n, 1);
    expect_param(0, "p", "q/z");

    /* a node that is only an intermediate is no match */
    add("GET", "/d/e/f");
    add("GET", "/d/{x}");
    expect("GET", "/d/e", "/d/{x}");
    expect_param(0, "x", "e");
}
END_TEST

START_TEST(test_method_not_allowed)
{
    add("GET", "/r");
    add("POST", "/r");
    add("DELETE", "/r");
    expect_405("PUT", "/r", "GET, HEAD, POST, DELETE");
    ck_assert_uint_eq(params.n, 0);
    expect("POST", "/r", "/r");
    expect_404("PUT", "/nope");

    add("POST", "/s");
    add("GET", "/s");
    expect_405("PATCH", "/s", "POST, GET, HEAD");

    add("POST", "/t");
    expect_405("GET", "/t", "POST");
    expect_405("HEAD", "/t", "POST");
    expect_405("get", "/t", "POST");

    add("GET", "/h");
    add("POST", "/h");
    add("HEAD", "/h");
    expect_405("PUT", "/h", "GET, POST, HEAD");
}
END_TEST

START_TEST(test_405_most_specific_node)
{
    add("GET", "/users/{id:int}");
    add("POST", "/users/{name}");
    expect_405("POST", "/users/5", "GET, HEAD");
    expect("POST", "/users/bob", "/users/{name}");
}
END_TEST

START_TEST(test_allow_truncated)
{
    enum router_result res;
    char small[16];

    add("GET", "/r");
    add("OPTIONS", "/r");
    res = router_match(R, "PUT", 3, "/r", 2, &data, &params, small, 10);
    ck_assert_int_eq(res, ROUTER_METHOD_NOT_ALLOWED);
    ck_assert_str_eq(small, "GET, HEAD");
    res = router_match(R, "PUT", 3, "/r", 2, &data, &params, small, 9);
    ck_assert_int_eq(res, ROUTER_METHOD_NOT_ALLOWED);
    ck_assert_str_eq(small, "GET");
    res = router_match(R, "PUT", 3, "/r", 2, &data, &params, NULL, 0);
    ck_assert_int_eq(res, ROUTER_METHOD_NOT_ALLOWED);
}
END_TEST

START_TEST(test_head)
{
    add_data("GET", "/g", "get");
    expect("HEAD", "/g", "get");
    add_data("GET", "/h", "get");
    add_data("HEAD", "/h", "head");
    expect("HEAD", "/h", "head");
    expect("GET", "/h", "get");
    add_data("HEAD", "/only", "head");
    expect("HEAD", "/only", "head");
    expect_405("GET", "/only", "HEAD");
}
END_TEST

START_TEST(test_trailing_slash)
{
    add_data("GET", "/t", "no slash");
    add_data("GET", "/t/", "slash");
    expect("GET", "/t", "no slash");
    expect("GET", "/t/", "slash");
    add("GET", "/only");
    expect_404("GET", "/only/");
    add("GET", "/dir/");
    expect_404("GET", "/dir");
}
END_TEST

START_TEST(test_unterminated_inputs)
{
    enum router_result res;

    add("GET", "/users/{id}");
    res = router_match(R, "GETX", 3, "/users/abcXYZ", 10, &data, &params, allow,
                       sizeof(allow));
    ck_assert_int_eq(res, ROUTER_FOUND);
    expect_param(0, "id", "abc");
    res = router_match(R, "GET", 3, "/users/abc", 10, &data, NULL, allow, sizeof(allow));
    ck_assert_int_eq(res, ROUTER_FOUND);
    ck_assert_str_eq((const char *)data, "/users/{id}");
}
END_TEST

START_TEST(test_names_per_method)
{
    add("GET", "/p/{id}");
    add("DELETE", "/p/{key}");
    expect("GET", "/p/1", "/p/{id}");
    expect_param(0, "id", "1");
    expect("DELETE", "/p/1", "/p/{key}");
    expect_param(0, "key", "1");
}
END_TEST

START_TEST(test_duplicates)
{
    add_data("GET", "/users", "first");
    ck_assert_str_eq(add_fails("GET", "/users"), "duplicate route GET /users");
    expect("GET", "/users", "first");

    add("GET", "/users/{id}");
    ck_assert_str_eq(add_fails("GET", "/users/{name}"),
                     "GET /users/{name} conflicts with GET /users/{id}");
    add("POST", "/users/{name}");
    add("GET", "/users/{id:int}");
    ck_assert_str_eq(add_fails("GET", "/users/{n:int}"),
                     "GET /users/{n:int} conflicts with GET /users/{id:int}");
    add("GET", "/f/{a:path}");
    ck_assert_str_eq(add_fails("GET", "/f/{b:path}"),
                     "GET /f/{b:path} conflicts with GET /f/{a:path}");
    add("GET", "/h");
    add("HEAD", "/h");
    add_fails("HEAD", "/h");
    expect("GET", "/users/x", "/users/{id}");
    expect_param(0, "id", "x");

    ck_assert_int_eq(router_add(R, "GET", "/users", NULL, NULL, 0), -1);
}
END_TEST

static const char *const bad_patterns[] = {
    "",
    "users",
    "users/{id}",
    "/{id",
    "/a/{id",
    "/a/{id:int",
    "/a/{id:float}",
    "/a/{id:}",
    "/a/{id:INT}",
    "/{}",
    "/{:int}",
    "/{:path}",
    "/{a}/{a}",
    "/{a}/{a:int}",
    "/{p:path}/x",
    "/{p:path}/",
    "/a{b}",
    "/{b}a",
    "/{a}{b}",
    "/a}b",
    "/{a}}",
    "/{a b}",
    "/{a-b}",
    "/{{a}}",
    "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}",
};

START_TEST(test_bad_pattern)
{
    const char *pattern = bad_patterns[_i];
    char err[256] = "";

    ck_assert_int_eq(router_check_pattern(pattern, err, sizeof(err)), -1);
    ck_assert_str_ne(err, "");
    ck_assert_int_eq(router_check_pattern(pattern, NULL, 0), -1);
    add_fails("GET", pattern);
    expect_404("GET", "/a");
}
END_TEST

START_TEST(test_bad_pattern_messages)
{
    char err[256];

    router_check_pattern("/a/{id:float}", err, sizeof(err));
    ck_assert_ptr_nonnull(strstr(err, "float"));
    router_check_pattern("/{a}/{a}", err, sizeof(err));
    ck_assert_ptr_nonnull(strstr(err, "duplicate parameter \"a\""));
    router_check_pattern("/{p:path}/x", err, sizeof(err));
    ck_assert_ptr_nonnull(strstr(err, "last"));
    router_check_pattern("/a{b}", err, sizeof(err));
    ck_assert_ptr_nonnull(strstr(err, "mixes"));
    router_check_pattern("/{a", err, sizeof(err));
    ck_assert_ptr_nonnull(strstr(err, "unclosed"));
    router_check_pattern("x", err, sizeof(err));
    ck_assert_ptr_nonnull(strstr(err, "'/'"));
    router_check_pattern("/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}", err, sizeof(err));
    ck_assert_ptr_nonnull(strstr(err, "more than 8"));
    router_check_pattern("/{:int}", err, sizeof(err));
    ck_assert_ptr_nonnull(strstr(err, "empty parameter name"));
    router_check_pattern("/a/{id:float}", err, 8);
    ck_assert_uint_eq(strlen(err), 7);
}
END_TEST

START_TEST(test_good_patterns)
{
    static const char *const good[] = {
        "/", "/a", "/a/", "/a//b", "/{a}", "/{a:int}", "/{a:path}", "/x/{a_1}/{B2:int}",
        "/%7Euser/{p:path}", "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}",
    };
    char err[256];

    for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
        ck_assert_msg(router_check_pattern(good[i], err, sizeof(err)) == 0, "%s: %s", good[i],
                      err);
        add(good[i][1] == '{' ? "PUT" : "GET", good[i]);
    }
    expect("GET", "/a//b", "/a//b");
    expect("GET", "/%7Euser/x", "/%7Euser/{p:path}");
}
END_TEST

START_TEST(test_bad_method)
{
    ck_assert_ptr_nonnull(strstr(add_fails("", "/a"), "method"));
    add_fails("GE T", "/a");
    add_fails("GET/", "/a");
    add_fails("GET\r\n", "/a");
    add("M-SEARCH", "/a");
    expect("M-SEARCH", "/a", "/a");
}
END_TEST

START_TEST(test_many_routes)
{
    enum { N = 1000 };
    static char patterns[N][64], statics[N][32];
    char path[64], want[32];

    for (int i = 0; i < N; i++) {
        snprintf(patterns[i], sizeof(patterns[i]), "/r%d/{id:int}/x%d", i, i % 10);
        snprintf(statics[i], sizeof(statics[i]), "/s/%d", i);
        add("GET", patterns[i]);
        add("GET", statics[i]);
    }
    add("GET", "/s/{other}");
    for (int i = 0; i < N; i++) {
        snprintf(path, sizeof(path), "/r%d/%d/x%d", i, i * 7 - 3, i % 10);
        expect("GET", path, patterns[i]);
        snprintf(want, sizeof(want), "%d", i * 7 - 3);
        expect_param(0, "id", want);
        expect("GET", statics[i], statics[i]);
        snprintf(path, sizeof(path), "/r%d/%d/x%d", i, i, (i + 1) % 10);
        expect_404("GET", path);
        expect_405("POST", statics[i], "GET, HEAD");
    }
    expect("GET", "/s/1000", "/s/{other}");
    expect_404("GET", "/r1000/1/x0");
}
END_TEST

static Suite *router_suite(void)
{
    Suite *s = suite_create("router");
    TCase *tc = tcase_create("match");

    tcase_set_timeout(tc, 10);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_static);
    tcase_add_test(tc, test_string_param);
    tcase_add_test(tc, test_int_param);
    tcase_add_test(tc, test_path_param);
    tcase_add_test(tc, test_root_path_param);
    tcase_add_test(tc, test_many_params);
    tcase_add_test(tc, test_static_wins);
    tcase_add_test(tc, test_priority_order);
    tcase_add_test(tc, test_backtracking);
    tcase_add_test(tc, test_method_not_allowed);
    tcase_add_test(tc, test_405_most_specific_node);
    tcase_add_test(tc, test_allow_truncated);
    tcase_add_test(tc, test_head);
    tcase_add_test(tc, test_trailing_slash);
    tcase_add_test(tc, test_unterminated_inputs);
    tcase_add_test(tc, test_names_per_method);
    tcase_add_test(tc, test_many_routes);
    suite_add_tcase(s, tc);

    tc = tcase_create("add");
    tcase_set_timeout(tc, 10);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_duplicates);
    tcase_add_loop_test(tc, test_bad_pattern, 0,
                        (int)(sizeof(bad_patterns) / sizeof(*bad_patterns)));
    tcase_add_test(tc, test_bad_pattern_messages);
    tcase_add_test(tc, test_good_patterns);
    tcase_add_test(tc, test_bad_method);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(router_suite());
}
