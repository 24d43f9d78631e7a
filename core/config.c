/* config.c: the option table and everything it drives: defaults, visage.ini parsing (inih),
 * type- and range-checked setting from flags, `visage config --dump`, config/visage.ini and the
 * OPTIONS section of man/visage.ini.5. Adding an option is one line in cfg_options[]. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* clang-format off */
#define OPT(sec, name, type, lo, hi, def, choices, help, field) \
    {sec, name, type, lo, hi, def, choices, help, offsetof(vs_config, field)}
/* clang-format on */

const cfg_option cfg_options[] = {
    OPT("general", "models", CFG_STRING, 0, 0, "", NULL,
        "folder of the face-network weights; empty = $VISAGE_MODELS, ./models or the installed "
        "copy",
        models),
    OPT("general", "threads", CFG_INT, 0, 256, "0", NULL, "CPU threads to use, 0 = all cores",
        threads),
    OPT("general", "device", CFG_STRING, 0, 0, "auto", NULL,
        "where networks run: auto (the first GPU if there is one, else the CPU), cpu, or cuda:N",
        device),

    OPT("project", "source_a", CFG_STRING, 0, 0, "", NULL,
        "video, image or folder of images the faces of side A come from (the workbench)", source_a),
    OPT("project", "source_b", CFG_STRING, 0, 0, "", NULL,
        "video, image or folder of images the faces of side B come from (the workbench)", source_b),

    OPT("extract", "every", CFG_INT, 1, 100000, "1", NULL, "use every Nth frame of a video", every),
    OPT("extract", "min_size", CFG_INT, 0, 10000, "0", NULL,
        "smallest face kept, in pixels (longer side of the detected box); 0 keeps all", min_size),
    OPT("extract", "max_faces", CFG_INT, 0, 1000, "0", NULL, "most faces kept per frame, 0 = all",
        max_faces),
    OPT("extract", "threshold", CFG_FLOAT, 0.05, 1, "0.5", NULL,
        "smallest detector score counted as a face", threshold),
    OPT("extract", "size", CFG_INT, 64, 2048, "256", NULL,
        "side of the aligned face images, in pixels", size),
    OPT("extract", "centering", CFG_CHOICE, 0, 0, "face", "face|head|legacy",
        "framing of the aligned face, as in Faceswap: face, head (whole head) or legacy (tighter)",
        centering),
    OPT("extract", "similarity", CFG_FLOAT, 0.05, 2, "0.6", NULL,
        "largest identity distance still counted as the reference person; lower is stricter",
        similarity),
    OPT("extract", "landmark_filter", CFG_BOOL, 0, 1, "true", NULL,
        "drop detections whose 68 landmarks do not form a plausible face", landmark_filter),
    OPT("extract", "min_blur", CFG_FLOAT, 0, 100000, "0", NULL,
        "drop faces blurrier than this (variance of the Laplacian; higher is sharper), 0 = keep "
        "all",
        min_blur),
    OPT("extract", "png_compression", CFG_INT, 0, 9, "3", NULL,
        "zlib level of the face PNGs: 0 = fastest, 9 = smallest", png_compression),

    OPT("train", "model", CFG_CHOICE, 0, 0, "original", "original|lightweight",
        "architecture of a new model (Faceswap's); an existing model keeps its own", model),
    OPT("train", "lowmem", CFG_BOOL, 0, 1, "false", NULL,
        "Original only: encoder width 512 and three convolutions, for small cards (new models)",
        lowmem),
    OPT("train", "learn_mask", CFG_BOOL, 0, 1, "false", NULL,
        "the decoders also learn the face mask, for conversion with --mask learned (new models)",
        learn_mask),
    OPT("train", "shrink", CFG_INT, 1, 64, "1", NULL,
        "divide every layer's width by this: a small, fast model for trials (new models; 1 = as "
        "published)",
        shrink),
    OPT("train", "coverage", CFG_FLOAT, 50, 100, "87.5", NULL,
        "percent of the aligned face the model sees, centred (new models)", coverage),
    OPT("train", "centering", CFG_CHOICE, 0, 0, "face", "face|head|legacy",
        "framing of the faces the model trains on (new models)", train_centering),
    OPT("train", "precision", CFG_CHOICE, 0, 0, "auto", "auto|fp32|tf32|bf16|fp16",
        "GPU arithmetic: auto (bf16 on Ampere and newer, fp16 on Volta and Turing), fp32, tf32, "
        "bf16 or fp16",
        precision),
    OPT("train", "batch", CFG_INT, 1, 4096, "16", NULL, "faces per side in one iteration", batch),
    OPT("train", "iterations", CFG_INT, 0, 2000000000, "0", NULL,
        "stop after this iteration, 0 = train until stopped", iterations),
    OPT("train", "save_every", CFG_INT, 1, 1000000, "250", NULL,
        "iterations between saves of the model", save_every),
    OPT("train", "snapshot_every", CFG_INT, 0, 100000000, "25000", NULL,
        "iterations between snapshots kept in model/snapshots, 0 = none", snapshot_every),
    OPT("train", "keep_backups", CFG_INT, 0, 100, "3", NULL, "earlier saves kept in model/backups",
        keep_backups),
    OPT("train", "learning_rate", CFG_FLOAT, 1e-7, 1e-2, "5e-05", NULL, "Adam's learning rate",
        learning_rate),
    OPT("train", "epsilon", CFG_FLOAT, 1e-12, 1, "1e-07", NULL, "Adam's epsilon", epsilon),
    OPT("train", "loss", CFG_CHOICE, 0, 0, "ssim", "mae|mse|ssim",
        "main loss: mean absolute error, mean squared error or structural dissimilarity", loss),
    OPT("train", "loss2", CFG_CHOICE, 0, 0, "mse", "none|mae|mse|ssim",
        "second loss added to the main one", loss2),
    OPT("train", "loss2_weight", CFG_FLOAT, 0, 1000, "100", NULL,
        "weight of the second loss, percent", loss2_weight),
    OPT("train", "penalized_mask_loss", CFG_BOOL, 0, 1, "true", NULL,
        "count only the face: the loss is taken on faces multiplied by their mask",
        penalized_mask_loss),
    OPT("train", "eye_multiplier", CFG_FLOAT, 1, 40, "3", NULL,
        "extra weight of the eye region (with penalized_mask_loss)", eye_multiplier),
    OPT("train", "mouth_multiplier", CFG_FLOAT, 1, 40, "2", NULL,
        "extra weight of the mouth region (with penalized_mask_loss)", mouth_multiplier),
    OPT("train", "rotation", CFG_FLOAT, 0, 90, "10", NULL,
        "augmentation: random rotation up to this many degrees", rotation),
    OPT("train", "zoom", CFG_FLOAT, 0, 50, "5", NULL, "augmentation: random zoom, percent", zoom),
    OPT("train", "shift", CFG_FLOAT, 0, 50, "5", NULL,
        "augmentation: random shift, percent of the size", shift),
    OPT("train", "flip", CFG_FLOAT, 0, 100, "50", NULL,
        "augmentation: chance of a mirror image, percent", flip),
    OPT("train", "color_lightness", CFG_FLOAT, 0, 100, "30", NULL,
        "augmentation: random lightness change in LAB, percent", color_lightness),
    OPT("train", "color_ab", CFG_FLOAT, 0, 100, "8", NULL,
        "augmentation: random colour change in LAB (a and b), percent", color_ab),
    OPT("train", "warp", CFG_BOOL, 0, 1, "true", NULL,
        "augmentation: random warp of the model's input (the target stays unwarped)", warp),
};

const int cfg_n_options = (int)(sizeof cfg_options / sizeof cfg_options[0]);

/* Capacity of a CFG_STRING / CFG_CHOICE field: the table cannot carry it, the struct can. */
static size_t field_capacity(const cfg_option *o)
{
    if (o->offset == offsetof(vs_config, models)) return sizeof((vs_config *)0)->models;
    if (o->offset == offsetof(vs_config, device)) return sizeof((vs_config *)0)->device;
    if (o->offset == offsetof(vs_config, source_a)) return sizeof((vs_config *)0)->source_a;
    if (o->offset == offsetof(vs_config, source_b)) return sizeof((vs_config *)0)->source_b;
    if (o->type == CFG_CHOICE) return CFG_CHOICE_LEN;
    VS_CHECK(!"string option without a known field size");
}

const cfg_option *cfg_find(const char *section, const char *key)
{
    for (int i = 0; i < cfg_n_options; i++)
        if (!strcmp(cfg_options[i].section, section) && !strcmp(cfg_options[i].key, key))
            return &cfg_options[i];
    return NULL;
}

static int known_section(const char *section)
{
    for (int i = 0; i < cfg_n_options; i++)
        if (!strcmp(cfg_options[i].section, section)) return 1;
    return 0;
}

/* Edit distance, for "did you mean" on a mistyped key (keys are short). */
static int edit_distance(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    if (na > 63 || nb > 63) return 99;
    int row[64];
    for (size_t j = 0; j <= nb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= nb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[nb];
}

static int fail_unknown(vs_err *e, const char *where, const char *section, const char *key)
{
    const char *pre = where ? where : "", *sep = where ? ": " : "";
    if (!section[0]) {
        for (int i = 0; i < cfg_n_options; i++)
            if (!strcmp(cfg_options[i].key, key))
                return vs_fail(e, "%s%skey '%s' outside a section: put it under [%s]", pre, sep,
                               key, cfg_options[i].section);
        return vs_fail(e, "%s%sunknown key '%s' outside a section", pre, sep, key);
    }
    if (!known_section(section)) {
        char names[256] = "";
        for (int i = 0; i < cfg_n_options; i++) {
            if (i > 0 && !strcmp(cfg_options[i].section, cfg_options[i - 1].section)) continue;
            size_t n = strlen(names);
            snprintf(names + n, sizeof names - n, "%s[%s]", n ? ", " : "", cfg_options[i].section);
        }
        return vs_fail(e, "%s%sunknown section [%s] (sections: %s)", pre, sep, section, names);
    }
    const char *best = NULL;
    int best_d = 3;
    for (int i = 0; i < cfg_n_options; i++) {
        if (strcmp(cfg_options[i].section, section)) continue;
        int d = edit_distance(key, cfg_options[i].key);
        if (d < best_d) best_d = d, best = cfg_options[i].key;
    }
    if (best)
        return vs_fail(e, "%s%sunknown key '%s' in [%s] (did you mean '%s'?)", pre, sep, key,
                       section, best);
    return vs_fail(e, "%s%sunknown key '%s' in [%s]", pre, sep, key, section);
}

/* "visage.ini:12: every = 'x': ..." from a file, "--every 'x': ..." from a flag. A long value is
 * shortened so the reason still fits in the message. */
static int fail_value(vs_err *e, const char *where, const cfg_option *o, const char *value,
                      const char *why)
{
    char shown[64];
    if (strlen(value) < sizeof shown)
        snprintf(shown, sizeof shown, "%s", value);
    else
        snprintf(shown, sizeof shown, "%.*s...", (int)sizeof shown - 4, value);
    if (where && where[0] == '-') return vs_fail(e, "%s '%s': %s", where, shown, why);
    if (where) return vs_fail(e, "%s: %s = '%s': %s", where, o->key, shown, why);
    return vs_fail(e, "%s = '%s': %s", o->key, shown, why);
}

static int fail_range(vs_err *e, const char *where, const cfg_option *o, const char *value)
{
    char why[128];
    snprintf(why, sizeof why, "must be between %g and %g", o->min, o->max);
    return fail_value(e, where, o, value, why);
}

static int parse_bool(int *out, const char *s)
{
    static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no",
                                                                                "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (!strcasecmp(s, yes[i])) return *out = 1, 0;
        if (!strcasecmp(s, no[i])) return *out = 0, 0;
    }
    return -1;
}

/* Is s one of the '|'-separated words in choices? */
static int is_choice(const char *choices, const char *s)
{
    size_t n = strlen(s);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && !strncmp(p, s, n)) return 1;
        if (!bar) break;
        p = bar + 1;
    }
    return 0;
}

/* "face|head|legacy" -> "face, head or legacy" */
static void choices_text(char *buf, size_t n, const char *choices)
{
    size_t o = 0;
    buf[0] = '\0';
    for (const char *p = choices; *p && o < n;) {
        const char *bar = strchr(p, '|');
        int len = bar ? (int)(bar - p) : (int)strlen(p);
        const char *sep = p == choices ? "" : (bar ? ", " : " or ");
        o += (size_t)snprintf(buf + o, n - o, "%s%.*s", sep, len, p);
        if (!bar) break;
        p = bar + 1;
    }
}

int cfg_set(vs_config *c, const char *section, const char *key, const char *value,
            const char *where, vs_err *e)
{
    const cfg_option *o = cfg_find(section, key);
    if (!o) return fail_unknown(e, where, section, key);
    char *field = (char *)c + o->offset;
    char *end;

    switch (o->type) {
    case CFG_INT: {
        errno = 0;
        long v = strtol(value, &end, 10);
        while (isspace((unsigned char)*end)) end++;
        if (end == value || *end) return fail_value(e, where, o, value, "not an integer");
        if (errno == ERANGE || v < o->min || v > o->max) return fail_range(e, where, o, value);
        *(int *)field = (int)v;
        return 0;
    }
    case CFG_FLOAT: {
        errno = 0;
        double v = strtod(value, &end);
        while (isspace((unsigned char)*end)) end++;
        if (end == value || *end || !isfinite(v))
            return fail_value(e, where, o, value, "not a number");
        if (v < o->min || v > o->max) return fail_range(e, where, o, value);
        *(float *)field = (float)v;
        return 0;
    }
    case CFG_BOOL:
        if (parse_bool((int *)field, value))
            return fail_value(e, where, o, value,
                              "not a boolean (true/false, yes/no, on/off or 1/0)");
        return 0;
    case CFG_CHOICE:
        if (!is_choice(o->choices, value)) {
            char why[160], list[128];
            choices_text(list, sizeof list, o->choices);
            snprintf(why, sizeof why, "must be %s", list);
            return fail_value(e, where, o, value, why);
        }
        /* fall through */
    case CFG_STRING: {
        size_t cap = field_capacity(o);
        if (strlen(value) >= cap) {
            char why[64];
            snprintf(why, sizeof why, "too long (at most %zu characters)", cap - 1);
            return fail_value(e, where, o, value, why);
        }
        memcpy(field, value, strlen(value) + 1);
        return 0;
    }
    }
    VS_CHECK(!"unknown option type");
}

void cfg_defaults(vs_config *c)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < cfg_n_options; i++) {
        vs_err e;
        const cfg_option *o = &cfg_options[i];
        VS_CHECK(cfg_set(c, o->section, o->key, o->def, "default", &e) == 0);
    }
}

void cfg_format(char *buf, size_t n, const vs_config *c, const cfg_option *o)
{
    const char *field = (const char *)c + o->offset;
    switch (o->type) {
    case CFG_INT: snprintf(buf, n, "%d", *(const int *)field); return;
    case CFG_FLOAT: snprintf(buf, n, "%g", (double)*(const float *)field); return;
    case CFG_BOOL: snprintf(buf, n, "%s", *(const int *)field ? "true" : "false"); return;
    case CFG_STRING:
    case CFG_CHOICE: snprintf(buf, n, "%s", field); return;
    }
    VS_CHECK(!"unknown option type");
}

/* ---- ini files ------------------------------------------------------------------------------- */

typedef struct ini_state {
    vs_config *c;
    const char *next; /* the rest of the file text */
    int line;         /* of the line inih read last */
    int failed_line;  /* where the handler first failed (inih goes on after an error), or 0 */
    vs_err err;
} ini_state;

/* inih's line reader over the file text, counting lines so the handler knows where it is. */
static char *read_ini_line(char *str, int num, void *stream)
{
    ini_state *st = stream;
    if (!*st->next) return NULL;
    /* inih (built with INI_ALLOW_MULTILINE) would take an indented line as the continuation of
     * the previous value; visage.ini has no continuations, so indentation is dropped */
    while (*st->next == ' ' || *st->next == '\t') st->next++;
    const char *nl = strchr(st->next, '\n');
    size_t len = nl ? (size_t)(nl - st->next) + 1 : strlen(st->next);
    if (len > (size_t)num - 1) len = (size_t)num - 1; /* cannot happen: long lines are refused */
    memcpy(str, st->next, len);
    str[len] = '\0';
    st->next += len;
    st->line++;
    return str;
}

static int on_ini_line(void *user, const char *section, const char *name, const char *value)
{
    ini_state *st = user;
    if (st->failed_line) return 0;
    int rc = name ? cfg_set(st->c, section, name, value, NULL, &st->err)
                  : (known_section(section) ? 0 : fail_unknown(&st->err, NULL, section, ""));
    if (rc == 0) return 1;
    st->failed_line = st->line;
    return 0;
}

/* inih reads at most INI_MAX_LINE - 1 characters a line and silently splits longer ones; refuse
 * them instead. Returns the 1-based number of the first long line, or 0. */
static int long_line(const char *text)
{
    int line = 1;
    size_t len = 0;
    for (const char *p = text; *p; p++) {
        if (*p == '\n') {
            line++, len = 0;
        } else if (++len >= INI_MAX_LINE - 1) {
            return line;
        }
    }
    return 0;
}

int cfg_load(vs_config *c, const char *path, vs_err *e)
{
    FILE *f = fopen(path, "rb");
    if (!f) return vs_fail(e, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
        fclose(f);
        return vs_fail(e, "%s: is a folder, not a settings file", path);
    }
    size_t cap = 4096, len = 0;
    char *text = vs_malloc(cap);
    for (size_t got; (got = fread(text + len, 1, cap - len - 1, f)) > 0;) {
        len += got;
        if (cap - len - 1 == 0) text = vs_realloc(text, cap *= 2);
    }
    int rd_err = ferror(f);
    fclose(f);
    text[len] = '\0';
    if (rd_err) {
        free(text);
        return vs_fail(e, "%s: read error", path);
    }
    if (memchr(text, '\0', len)) {
        free(text);
        return vs_fail(e, "%s: not a text file (it contains NUL bytes)", path);
    }
    int ll = long_line(text);
    if (ll) {
        free(text);
        return vs_fail(e, "%s:%d: line longer than %d characters", path, ll, INI_MAX_LINE - 2);
    }

    /* Parse into a copy so a bad file leaves c as it was. */
    vs_config copy = *c;
    ini_state st = {.c = &copy, .next = text};
    int line = ini_parse_stream(read_ini_line, &st, on_ini_line, &st);
    free(text);
    if (line < 0) return vs_fail(e, "%s: out of memory while parsing", path);
    if (line > 0 && line == st.failed_line) return vs_fail(e, "%s:%d: %s", path, line, st.err.msg);
    if (line > 0)
        return vs_fail(e, "%s:%d: syntax error: expected '[section]', 'key = value' or a # comment",
                       path, line);
    *c = copy;
    return 0;
}

/* A standard file that cannot be reached (missing, or a folder on the way that cannot be searched,
 * as when visage runs as another user with $HOME unchanged) is skipped; one that exists must load.
 */
static int load_if_present(vs_config *c, const char *path, vs_err *e)
{
    struct stat st;
    if (stat(path, &st) != 0) return 0;
    return cfg_load(c, path, e);
}

int cfg_load_standard(vs_config *c, const char *project_dir, vs_err *e)
{
    char path[4096];
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    path[0] = '\0';
    if (xdg && xdg[0] == '/')
        snprintf(path, sizeof path, "%s/visage/visage.ini", xdg);
    else if (home && home[0])
        snprintf(path, sizeof path, "%s/.config/visage/visage.ini", home);
    if (path[0] && load_if_present(c, path, e)) return -1;
    if (project_dir && project_dir[0]) {
        snprintf(path, sizeof path, "%s/visage.ini", project_dir);
        if (load_if_present(c, path, e)) return -1;
    }
    return 0;
}

/* ---- visage.ini and man page text ------------------------------------------------------------ */

/* "(1 to 100000)", "(face, head or legacy)"; "" for free text. */
static void range_text(char *buf, size_t n, const cfg_option *o)
{
    char list[128];
    switch (o->type) {
    case CFG_INT:
    case CFG_FLOAT: snprintf(buf, n, " (%g to %g)", o->min, o->max); return;
    case CFG_BOOL: snprintf(buf, n, " (true or false)"); return;
    case CFG_CHOICE:
        choices_text(list, sizeof list, o->choices);
        snprintf(buf, n, " (%s)", list);
        return;
    case CFG_STRING: buf[0] = '\0'; return;
    }
}

void cfg_write_ini(FILE *f, const vs_config *c, cfg_dump_mode mode)
{
    fprintf(f, "# visage.ini: every visage setting with its default and what it does.\n"
               "# Read from ~/.config/visage/visage.ini, then PROJECT/visage.ini; command-line\n"
               "# flags override both. Lines starting with # are comments. See visage.ini(5).\n");
    for (int i = 0; i < cfg_n_options; i++) {
        const cfg_option *o = &cfg_options[i];
        if (i == 0 || strcmp(o->section, cfg_options[i - 1].section))
            fprintf(f, "\n[%s]\n", o->section);
        char value[1100], range[160];
        if (mode == CFG_DUMP_DEFAULTS || !c)
            snprintf(value, sizeof value, "%s", o->def);
        else
            cfg_format(value, sizeof value, c, o);
        range_text(range, sizeof range, o);
        fprintf(f, "\n# %s\n# default: %s%s\n%s =%s%s\n", o->help, o->def[0] ? o->def : "empty",
                range, o->key, value[0] ? " " : "", value);
    }
}

/* Roff-safe text: backslashes doubled as \e, a leading dot or quote protected. */
static void man_text(FILE *f, const char *s)
{
    if (*s == '.' || *s == '\'') fputs("\\&", f);
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\e", f);
        else if (*s == '-')
            fputs("\\-", f);
        else
            fputc(*s, f);
    }
}

void cfg_write_man(FILE *f)
{
    for (int i = 0; i < cfg_n_options; i++) {
        const cfg_option *o = &cfg_options[i];
        if (i == 0 || strcmp(o->section, cfg_options[i - 1].section))
            fprintf(f, ".SS [%s]\n", o->section);
        fprintf(f, ".TP\n.B %s\n", o->key);
        fputc(toupper((unsigned char)o->help[0]), f);
        man_text(f, o->help + 1);
        fputs(".\n", f);
        switch (o->type) {
        case CFG_INT:
        case CFG_FLOAT:
            fprintf(f, "%s from %g to %g.\n", o->type == CFG_INT ? "An integer" : "A number",
                    o->min, o->max);
            break;
        case CFG_BOOL: fputs("Either true or false (also yes/no, on/off, 1/0).\n", f); break;
        case CFG_CHOICE: {
            char list[128];
            choices_text(list, sizeof list, o->choices);
            fprintf(f, "One of %s.\n", list);
            break;
        }
        case CFG_STRING: break;
        }
        if (o->def[0]) {
            fputs("Default: ", f);
            man_text(f, o->def);
            fputs(".\n", f);
        } else {
            fputs("Default: empty.\n", f);
        }
    }
}
