/* test_config.c: the option table, visage.ini parsing and its error messages, flags, and that
 * config/visage.ini and man/visage.ini.5 match the table (so they cannot drift).
 * `test_config --print-ini` and `--print-man` print the generated texts for regenerating them. */
#include "check.h"
#include "config.h"

#include <unistd.h>

static char tmpdir[] = "/tmp/visage-test-config-XXXXXX";

/* Writes text to tmpdir/name and returns the path (static buffer per call slot). */
static const char *write_file(const char *name, const char *text)
{
    static char paths[4][4200];
    static int slot;
    char *p = paths[slot++ % 4];
    snprintf(p, sizeof paths[0], "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "w");
    CHECKF(f != NULL, "cannot write %s", p);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    return p;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (size_t got; (got = fread(buf + n, 1, cap - n - 1, f)) > 0;) {
        n += got;
        if (n + 1 == cap) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

/* What cfg_write_ini / cfg_write_man print, as a malloc'd string. */
static char *ini_text(const vs_config *c, cfg_dump_mode mode)
{
    char *s = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&s, &n);
    cfg_write_ini(f, c, mode);
    fclose(f);
    return s;
}

static char *man_text(void)
{
    char *s = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&s, &n);
    cfg_write_man(f);
    fclose(f);
    return s;
}

/* Loads text as a file onto defaults; returns cfg_load's status, the message in e. */
static int load_text(vs_config *c, const char *text, vs_err *e)
{
    cfg_defaults(c);
    e->msg[0] = '\0';
    return cfg_load(c, write_file("t.ini", text), e);
}

#define CHECK_MSG(e, needle)                                                                       \
    CHECKF(strstr((e).msg, needle) != NULL, "message '%s' lacks '%s'", (e).msg, needle)

static void test_table(void)
{
    vs_config c;
    cfg_defaults(&c);
    CHECK(c.models[0] == '\0');
    CHECK(c.threads == 0);
    CHECK(c.every == 1);
    CHECK(c.min_size == 0);
    CHECK(c.max_faces == 0);
    CHECK_NEAR(c.threshold, 0.5, 1e-6);
    CHECK(c.size == 256);
    CHECK(!strcmp(c.centering, "face"));
    CHECK_NEAR(c.similarity, 0.6, 1e-6);
    CHECK(c.landmark_filter == 1);
    CHECK_NEAR(c.min_blur, 0, 0);
    CHECK(c.png_compression == 3);
    CHECK(!strcmp(c.model, "original"));
    CHECK(c.batch == 16 && c.save_every == 250 && c.snapshot_every == 25000);
    CHECK(!strcmp(c.loss, "ssim") && !strcmp(c.loss2, "mse"));
    CHECK_NEAR(c.loss2_weight, 100, 0);
    CHECK_NEAR(c.eye_multiplier, 3, 0);
    CHECK_NEAR(c.mouth_multiplier, 2, 0);
    CHECK_NEAR(c.learning_rate, 5e-5, 1e-11);
    CHECK_NEAR(c.epsilon, 1e-7, 1e-13);
    CHECK_NEAR(c.coverage, 87.5, 0);
    CHECK(cfg_n_options == 42);
    CHECK(c.shrink == 1 && !c.source_a[0] && !c.source_b[0]);

    for (int i = 0; i < cfg_n_options; i++) {
        const cfg_option *o = &cfg_options[i];
        char buf[1100];
        cfg_format(buf, sizeof buf, &c, o);
        /* the default text is what cfg_format prints, so dumps of defaults match the table */
        CHECKF(!strcmp(buf, o->def), "[%s] %s: formats as '%s', default text '%s'", o->section,
               o->key, buf, o->def);
        CHECK(cfg_find(o->section, o->key) == o);
        CHECKF(o->help && o->help[0] && !strchr(o->help, '\n'), "%s: help is one line", o->key);
        for (int j = 0; j < i; j++) {
            CHECKF(cfg_options[j].offset != o->offset, "%s and %s share a field", o->key,
                   cfg_options[j].key);
            CHECKF(strcmp(cfg_options[j].key, o->key) || strcmp(cfg_options[j].section, o->section),
                   "%s listed twice", o->key);
        }
    }
    CHECK(cfg_find("extract", "evry") == NULL);
    CHECK(cfg_find("general", "every") == NULL);
}

static void test_load_ok(void)
{
    vs_config c;
    vs_err e;
    /* an empty file and a file of comments change nothing */
    CHECK(load_text(&c, "", &e) == 0);
    CHECK(load_text(&c, "# nothing\n; still nothing\n\n[extract]\n", &e) == 0);
    CHECK(c.every == 1);

    /* indented lines are ordinary lines, not continuations of the previous value */
    CHECK(load_text(&c, "[extract]\nevery = 3\n  size = 128\n\t[general]\n  threads = 2\n", &e) ==
          0);
    CHECK(c.every == 3 && c.size == 128 && c.threads == 2);

    /* every option set to something other than its default */
    const char *all = "[general]\n"
                      "models = /opt/face models\n"
                      "threads = 7\n"
                      "[extract]\n"
                      "every = 5\n"
                      "min_size = 80\n"
                      "max_faces = 2\n"
                      "threshold = 0.75\n"
                      "size = 512\n"
                      "centering = head\n"
                      "similarity = 0.45\n"
                      "landmark_filter = false\n"
                      "min_blur = 12.5\n"
                      "png_compression = 9\n";
    CHECKF(load_text(&c, all, &e) == 0, "%s", e.msg);
    CHECK(!strcmp(c.models, "/opt/face models"));
    CHECK(c.threads == 7);
    CHECK(c.every == 5);
    CHECK(c.min_size == 80);
    CHECK(c.max_faces == 2);
    CHECK_NEAR(c.threshold, 0.75, 1e-6);
    CHECK(c.size == 512);
    CHECK(!strcmp(c.centering, "head"));
    CHECK_NEAR(c.similarity, 0.45, 1e-6);
    CHECK(c.landmark_filter == 0);
    CHECK_NEAR(c.min_blur, 12.5, 1e-6);
    CHECK(c.png_compression == 9);

    /* round trip: dump those values, load the dump onto defaults, same config */
    char *dump = ini_text(&c, CFG_DUMP_VALUES);
    vs_config d;
    CHECKF(load_text(&d, dump, &e) == 0, "%s", e.msg);
    CHECK(memcmp(&c, &d, sizeof c) == 0);
    char *dump2 = ini_text(&d, CFG_DUMP_VALUES);
    CHECK(!strcmp(dump, dump2));
    free(dump);
    free(dump2);

    /* the defaults dump loads and gives the defaults */
    vs_config def;
    cfg_defaults(&def);
    char *defs = ini_text(&def, CFG_DUMP_DEFAULTS);
    CHECKF(load_text(&d, defs, &e) == 0, "%s", e.msg);
    CHECK(memcmp(&d, &def, sizeof d) == 0);
    free(defs);

    /* a file sets only what it names: the rest keeps what c had */
    cfg_defaults(&c);
    c.size = 128;
    CHECK(cfg_load(&c, write_file("part.ini", "[extract]\nevery = 3\n"), &e) == 0);
    CHECK(c.every == 3 && c.size == 128);
}

static void test_errors(void)
{
    vs_config c;
    vs_err e;
    char want[4400];

    /* unknown key: file and line, section, and a suggestion */
    CHECK(load_text(&c, "# comment\n[extract]\nevry = 2\n", &e) == -1);
    snprintf(want, sizeof want, "%s/t.ini:3: unknown key 'evry' in [extract]", tmpdir);
    CHECK_MSG(e, want);
    CHECK_MSG(e, "did you mean 'every'?");

    CHECK(load_text(&c, "[extract]\nevery = 2\n[extrct]\nsize = 128\n", &e) == -1);
    CHECK_MSG(e, "t.ini:4: unknown section [extrct]");
    CHECK(load_text(&c, "every = 2\n", &e) == -1);
    CHECK_MSG(e, "t.ini:1: key 'every' outside a section: put it under [extract]");

    /* bad values, with the line */
    CHECK(load_text(&c, "[extract]\n\nevery = x\n", &e) == -1);
    snprintf(want, sizeof want, "%s/t.ini:3: every = 'x': not an integer", tmpdir);
    CHECK_MSG(e, want);
    CHECK(load_text(&c, "[extract]\nevery = 0\n", &e) == -1);
    CHECK_MSG(e, "t.ini:2: every = '0': must be between 1 and 100000");
    CHECK(load_text(&c, "[extract]\nevery = 100001\n", &e) == -1);
    CHECK_MSG(e, "must be between 1 and 100000");
    CHECK(load_text(&c, "[extract]\nevery = 99999999999999999999\n", &e) == -1);
    CHECK_MSG(e, "must be between 1 and 100000");
    CHECK(load_text(&c, "[extract]\nevery = 2.5\n", &e) == -1);
    CHECK_MSG(e, "not an integer");
    CHECK(load_text(&c, "[extract]\nthreshold = 0.01\n", &e) == -1);
    CHECK_MSG(e, "t.ini:2: threshold = '0.01': must be between 0.05 and 1");
    CHECK(load_text(&c, "[extract]\nthreshold = half\n", &e) == -1);
    CHECK_MSG(e, "not a number");
    CHECK(load_text(&c, "[extract]\nthreshold = nan\n", &e) == -1);
    CHECK_MSG(e, "not a number");
    CHECK(load_text(&c, "[extract]\ncentering = middle\n", &e) == -1);
    CHECK_MSG(e, "t.ini:2: centering = 'middle': must be face, head or legacy");
    CHECK(load_text(&c, "[extract]\nlandmark_filter = maybe\n", &e) == -1);
    CHECK_MSG(e, "t.ini:2: landmark_filter = 'maybe': not a boolean");
    CHECK(load_text(&c, "[extract]\nevery 5\n", &e) == -1);
    CHECK_MSG(e, "t.ini:2: syntax error");
    CHECK(load_text(&c, "[extract\nevery = 5\n", &e) == -1);
    CHECK_MSG(e, "t.ini:1: syntax error");

    /* a bad file leaves the config as it was, even the lines before the error */
    cfg_defaults(&c);
    CHECK(cfg_load(&c, write_file("bad.ini", "[extract]\nevery = 4\nsize = huge\n"), &e) == -1);
    CHECK(c.every == 1);
    CHECK_MSG(e, "bad.ini:3: size = 'huge'");

    /* the first error is the one reported */
    CHECK(load_text(&c, "[extract]\nevery = x\nsize = y\n", &e) == -1);
    CHECK_MSG(e, "t.ini:2: every");

    /* a line too long for inih is refused, not split */
    char longline[400];
    snprintf(longline, sizeof longline, "[general]\nmodels = /%0250d\n", 0);
    CHECK(load_text(&c, longline, &e) == -1);
    CHECK_MSG(e, "t.ini:2: line longer than");

    /* a missing file is an error naming it */
    cfg_defaults(&c);
    snprintf(want, sizeof want, "%s/nope.ini", tmpdir);
    CHECK(cfg_load(&c, want, &e) == -1);
    CHECK_MSG(e, want);
    CHECK_MSG(e, "No such file");
    CHECK(cfg_load(&c, tmpdir, &e) == -1);
    CHECK_MSG(e, "is a folder");
}

static void test_bools(void)
{
    static const char *const yes[] = {"true", "yes", "on", "1", "TRUE", "Yes", "ON"};
    static const char *const no[] = {"false", "no", "off", "0", "False", "NO", "Off"};
    vs_config c;
    vs_err e;
    cfg_defaults(&c);
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        c.landmark_filter = 0;
        CHECKF(cfg_set(&c, "extract", "landmark_filter", yes[i], "t", &e) == 0, "%s", yes[i]);
        CHECKF(c.landmark_filter == 1, "%s", yes[i]);
    }
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        c.landmark_filter = 1;
        CHECKF(cfg_set(&c, "extract", "landmark_filter", no[i], "t", &e) == 0, "%s", no[i]);
        CHECKF(c.landmark_filter == 0, "%s", no[i]);
    }
    CHECK(cfg_set(&c, "extract", "landmark_filter", "2", "t", &e) == -1);
    CHECK(cfg_set(&c, "extract", "landmark_filter", "", "t", &e) == -1);
    CHECK(load_text(&c, "[extract]\nlandmark_filter = off\n", &e) == 0 && c.landmark_filter == 0);
}

static void test_flags(void)
{
    vs_config c;
    vs_err e;
    cfg_defaults(&c);
    CHECK(cfg_set(&c, "extract", "every", "5", "--every", &e) == 0);
    CHECK(c.every == 5);
    CHECK(cfg_set(&c, "extract", "similarity", "0.3", "--similarity", &e) == 0);
    CHECK_NEAR(c.similarity, 0.3, 1e-6);
    CHECK(cfg_set(&c, "extract", "centering", "legacy", "--centering", &e) == 0);
    CHECK(!strcmp(c.centering, "legacy"));
    CHECK(cfg_set(&c, "general", "models", "/tmp/m", "--models", &e) == 0);
    CHECK(!strcmp(c.models, "/tmp/m"));

    CHECK(cfg_set(&c, "extract", "every", "x", "--every", &e) == -1);
    CHECK_MSG(e, "--every 'x': not an integer");
    CHECK(c.every == 5);
    CHECK(cfg_set(&c, "extract", "size", "32", "--size", &e) == -1);
    CHECK_MSG(e, "--size '32': must be between 64 and 2048");
    CHECK(cfg_set(&c, "extract", "size", "4096", "visage.ini:9", &e) == -1);
    CHECK_MSG(e, "visage.ini:9: size = '4096': must be between 64 and 2048");
    CHECK(cfg_set(&c, "extract", "nope", "1", "--nope", &e) == -1);
    CHECK_MSG(e, "unknown key 'nope' in [extract]");

    char big[1100];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CHECK(cfg_set(&c, "general", "models", big, "--models", &e) == -1);
    CHECK_MSG(e, "too long");
    CHECK(!strcmp(c.models, "/tmp/m"));
}

static void test_standard(void)
{
    vs_config c;
    vs_err e;
    char home[4200], xdg[4200], proj[4200], p[4400];
    snprintf(home, sizeof home, "%s/home", tmpdir);
    snprintf(xdg, sizeof xdg, "%s/xdg", tmpdir);
    snprintf(proj, sizeof proj, "%s/proj", tmpdir);
    mkdir(home, 0755);
    mkdir(xdg, 0755);
    mkdir(proj, 0755);

    /* nothing there: defaults, no error */
    unsetenv("XDG_CONFIG_HOME");
    setenv("HOME", home, 1);
    cfg_defaults(&c);
    CHECKF(cfg_load_standard(&c, proj, &e) == 0, "%s", e.msg);
    CHECK(c.every == 1);
    CHECK(cfg_load_standard(&c, NULL, &e) == 0);

    /* ~/.config/visage/visage.ini, then the project's over it */
    snprintf(p, sizeof p, "%s/.config", home);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/.config/visage", home);
    mkdir(p, 0755);
    write_file("home/.config/visage/visage.ini", "[extract]\nevery = 4\nsize = 128\n");
    write_file("proj/visage.ini", "[extract]\nsize = 512\n");
    cfg_defaults(&c);
    CHECKF(cfg_load_standard(&c, proj, &e) == 0, "%s", e.msg);
    CHECK(c.every == 4 && c.size == 512);

    /* $XDG_CONFIG_HOME wins over $HOME/.config */
    snprintf(p, sizeof p, "%s/visage", xdg);
    mkdir(p, 0755);
    write_file("xdg/visage/visage.ini", "[extract]\nevery = 9\n");
    setenv("XDG_CONFIG_HOME", xdg, 1);
    cfg_defaults(&c);
    CHECKF(cfg_load_standard(&c, NULL, &e) == 0, "%s", e.msg);
    CHECK(c.every == 9 && c.size == 256);

    /* a home that cannot hold a config (here a file, as a home of another user may be out of
     * reach) is skipped, not an error */
    setenv("HOME", write_file("notadir", "x"), 1);
    unsetenv("XDG_CONFIG_HOME");
    cfg_defaults(&c);
    CHECKF(cfg_load_standard(&c, NULL, &e) == 0, "%s", e.msg);
    CHECK(c.every == 1);
    setenv("XDG_CONFIG_HOME", xdg, 1);

    /* an error in a standard file names it */
    write_file("proj/visage.ini", "[extract]\nsize = 1\n");
    CHECK(cfg_load_standard(&c, proj, &e) == -1);
    CHECK_MSG(e, "proj/visage.ini:2: size = '1'");
    unsetenv("XDG_CONFIG_HOME");
}

/* config/visage.ini and man/visage.ini.5 are generated from the table; a stale copy fails. */
static void test_generated_files(void)
{
    vs_config def;
    cfg_defaults(&def);
    char *want = ini_text(&def, CFG_DUMP_DEFAULTS);
    char *have = read_all("config/visage.ini", NULL);
    CHECKF(have && !strcmp(have, want),
           "config/visage.ini does not match the option table in core/config.c; regenerate it "
           "(from the repository root): build/tests/test_config --print-ini > config/visage.ini");
    free(have);
    free(want);

    char *man = man_text();
    char *page = read_all("man/visage.ini.5", NULL);
    CHECKF(page && strstr(page, man),
           "man/visage.ini.5 does not contain the OPTIONS text of the option table; replace the "
           "lines between its '.\\\" options:' markers with the output of "
           "build/tests/test_config --print-man");
    free(page);
    free(man);
}

static void cleanup(void)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
}

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "--print-ini")) {
        vs_config def;
        cfg_defaults(&def);
        cfg_write_ini(stdout, &def, CFG_DUMP_DEFAULTS);
        return 0;
    }
    if (argc == 2 && !strcmp(argv[1], "--print-man")) {
        cfg_write_man(stdout);
        return 0;
    }
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_table();
    test_load_ok();
    test_errors();
    test_bools();
    test_flags();
    test_standard();
    test_generated_files();
    cleanup();
    return check_report("test_config");
}
