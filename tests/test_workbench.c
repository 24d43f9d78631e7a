/* test_workbench.c: the workbench's pure parts. The layout over every terminal size from 80x24
 * to 300x100 (panels inside the screen, none overlapping, the focused one always shown, every
 * panel at once on a large terminal), the key table (no key bound twice where it applies, every
 * action reachable, each panel reachable from anywhere) and the man page's KEYS section, which
 * must be the table's. `test_workbench --print-keys-man` prints that section. */
#include "check.h"

#include "../tui/keys.h"
#include "../tui/layout.h"

static int inside(tui_rect r, int cols, int rows)
{
    return r.y >= 0 && r.x >= 0 && r.y + r.h <= rows && r.x + r.w <= cols;
}

static void test_layout(void)
{
    int sizes = 0, bad = 0;
    for (int rows = 24; rows <= 100; rows++)
        for (int cols = 80; cols <= 300; cols++)
            for (int f = 0; f < TUI_NPANELS; f++) {
                tui_layout l;
                tui_layout_compute(&l, cols, rows, (tui_panel_id)f);
                sizes++;
                int ok = !l.too_small && l.cols == cols && l.rows == rows;
                /* everything inside, tabs on top and status at the bottom */
                ok &= inside(l.tabs, cols, rows) && inside(l.status, cols, rows);
                ok &= l.tabs.y == 0 && l.tabs.h == 1 && l.tabs.w == cols;
                ok &= l.status.y == rows - 1 && l.status.h == 1 && l.status.w == cols;
                tui_rect all[TUI_NPANELS + 2];
                int n = 0;
                all[n++] = l.tabs, all[n++] = l.status;
                int visible = 0, area = 0;
                for (int p = 0; p < TUI_NPANELS; p++) {
                    tui_rect r = l.panel[p];
                    if (!r.h) continue;
                    visible++;
                    area += r.h * r.w;
                    ok &= inside(r, cols, rows);
                    ok &= r.h >= 8 && r.w >= 30; /* room for a frame and a few lines */
                    all[n++] = r;
                }
                for (int i = 0; i < n; i++)
                    for (int j = i + 1; j < n; j++) ok &= !tui_rect_overlap(all[i], all[j]);
                /* the focused panel is shown; all of them from the large size on, else just it */
                ok &= l.panel[f].h > 0;
                int large = cols >= TUI_ALL_COLS && rows >= TUI_ALL_ROWS;
                ok &= large ? (visible == TUI_NPANELS && l.all) : (visible == 1 && !l.all);
                /* and together they fill the space between the tab bar and the status line */
                ok &= area == cols * (rows - 2);
                if (!ok && bad++ < 5)
                    fprintf(stderr, "layout %dx%d focus %s is wrong\n", cols, rows,
                            tui_panel_name((tui_panel_id)f));
            }
    CHECKF(bad == 0, "%d of %d layouts wrong", bad, sizes);
    /* below the minimum only a message fits */
    tui_layout l;
    tui_layout_compute(&l, 30, 10, TUI_FACES);
    CHECK(l.too_small && l.panel[TUI_FACES].h == 0);
    /* the overlap test itself */
    CHECK(tui_rect_overlap((tui_rect){0, 0, 2, 2}, (tui_rect){1, 1, 2, 2}));
    CHECK(!tui_rect_overlap((tui_rect){0, 0, 2, 2}, (tui_rect){0, 2, 2, 2}));
    CHECK(!tui_rect_overlap((tui_rect){0, 0, 2, 2}, (tui_rect){2, 0, 2, 2}));
}

static void test_keys(void)
{
    int seen[TUI_NACTIONS] = {0};
    int n = 0;
    for (const tui_key *k = tui_keys; k->key; k++, n++) {
        CHECKF(k->help && k->help[0], "key %d has no help", k->key);
        CHECK(k->action > TUI_A_NONE && k->action < TUI_NACTIONS);
        CHECK(k->where == TUI_ANYWHERE || (k->where >= 0 && k->where < TUI_NPANELS));
        seen[k->action]++;
        /* one binding per key where it applies: not twice in one place, and a panel's own key
         * never shadows a global one (it would make the global one unreachable there) */
        for (const tui_key *o = k + 1; o->key; o++) {
            if (o->key != k->key) continue;
            int clash =
                o->where == k->where || o->where == TUI_ANYWHERE || k->where == TUI_ANYWHERE;
            char name[32];
            CHECKF(!clash, "key %s bound twice", tui_key_name(name, sizeof name, k->key));
        }
    }
    CHECK(n > 30);
    for (int a = TUI_A_NONE + 1; a < TUI_NACTIONS; a++)
        CHECKF(seen[a] > 0, "action %d has no key", a);
    /* the dispatcher finds what the table says, in its panel and only there */
    CHECK(tui_key_action('d', TUI_FACES) == TUI_A_DELETE);
    CHECK(tui_key_action('d', TUI_TRAIN) == TUI_A_NONE);
    CHECK(tui_key_action('x', TUI_TRAIN) == TUI_A_TRAIN_STOP);
    CHECK(tui_key_action('x', TUI_CONVERT) == TUI_A_CONVERT_STOP);
    CHECK(tui_key_action('?', TUI_CONVERT) == TUI_A_HELP);
    CHECK(tui_key_action('j', TUI_FACES) == TUI_A_DOWN);
    /* every panel can be reached from anywhere */
    static const tui_action go[TUI_NPANELS] = {
        TUI_A_GOTO_PROJECT, TUI_A_GOTO_FACES, TUI_A_GOTO_TRAIN, TUI_A_GOTO_CONVERT, TUI_A_GOTO_LOG};
    for (int p = 0; p < TUI_NPANELS; p++)
        for (int f = 0; f < TUI_NPANELS; f++)
            CHECK(tui_key_action('1' + p, (tui_panel_id)f) == go[p]);
    char name[32];
    CHECK(!strcmp(tui_key_name(name, sizeof name, 12), "Ctrl-L"));
    CHECK(!strcmp(tui_key_name(name, sizeof name, ' '), "Space"));
    CHECK(!strcmp(tui_key_name(name, sizeof name, 'q'), "q"));
}

/* man/visage.1's KEYS section is the table's */
static void test_man(void)
{
    char *want = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&want, &len);
    tui_keys_write_man(f);
    fclose(f);
    FILE *m = fopen("man/visage.1", "r");
    CHECK(m != NULL);
    if (!m) {
        free(want);
        return;
    }
    char *page = NULL;
    size_t plen = 0;
    FILE *pf = open_memstream(&page, &plen);
    char buf[4096];
    size_t r;
    while ((r = fread(buf, 1, sizeof buf, m)) > 0) fwrite(buf, 1, r, pf);
    fclose(pf);
    fclose(m);
    CHECKF(strstr(page, want) != NULL,
           "man/visage.1 does not contain the key table; replace its KEYS section's entries "
           "with the output of build/tests/test_workbench --print-keys-man");
    free(page);
    free(want);
}

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "--print-keys-man")) {
        tui_keys_write_man(stdout);
        return 0;
    }
    test_layout();
    test_keys();
    test_man();
    return check_report("test_workbench");
}
