/* keys.c: the key table and its lookups (see keys.h). Several keys may lead to one action (an
 * arrow and its vi letter); each is its own row so the help shows both. */
#include "keys.h"

#include <stdio.h>

#ifdef VS_HAVE_NCURSES
#include <curses.h>
#else /* the table still builds, for the man page and the tests, without curses */
#define KEY_DOWN 0402
#define KEY_UP 0403
#define KEY_LEFT 0404
#define KEY_RIGHT 0405
#define KEY_HOME 0406
#define KEY_NPAGE 0522
#define KEY_PPAGE 0523
#define KEY_END 0550
#define KEY_BTAB 0541
#define KEY_F(n) (0410 + (n))
#endif

#define CTRL(c) ((c)&0x1f)

const tui_key tui_keys[] = {
    {'?', TUI_ANYWHERE, TUI_A_HELP, "show this help (any key closes it)"},
    {KEY_F(1), TUI_ANYWHERE, TUI_A_HELP, "show this help"},
    {'q', TUI_ANYWHERE, TUI_A_QUIT, "quit (asks first while a job runs here)"},
    {CTRL('L'), TUI_ANYWHERE, TUI_A_REDRAW, "redraw the screen"},
    {'\t', TUI_ANYWHERE, TUI_A_NEXT_PANEL, "next panel"},
    {KEY_BTAB, TUI_ANYWHERE, TUI_A_PREV_PANEL, "previous panel"},
    {'1', TUI_ANYWHERE, TUI_A_GOTO_PROJECT, "Project panel: sources, faces, model, disk"},
    {'2', TUI_ANYWHERE, TUI_A_GOTO_FACES, "Faces panel: extract and review faces"},
    {'3', TUI_ANYWHERE, TUI_A_GOTO_TRAIN, "Train panel: losses, rates, previews"},
    {'4', TUI_ANYWHERE, TUI_A_GOTO_CONVERT, "Convert panel: options, preview, run"},
    {'5', TUI_ANYWHERE, TUI_A_GOTO_LOG, "Log panel: what the jobs said, errors first"},
    {KEY_UP, TUI_ANYWHERE, TUI_A_UP, "move up"},
    {'k', TUI_ANYWHERE, TUI_A_UP, "move up"},
    {KEY_DOWN, TUI_ANYWHERE, TUI_A_DOWN, "move down"},
    {'j', TUI_ANYWHERE, TUI_A_DOWN, "move down"},
    {KEY_LEFT, TUI_ANYWHERE, TUI_A_LEFT, "move left"},
    {'h', TUI_ANYWHERE, TUI_A_LEFT, "move left"},
    {KEY_RIGHT, TUI_ANYWHERE, TUI_A_RIGHT, "move right"},
    {'l', TUI_ANYWHERE, TUI_A_RIGHT, "move right"},
    {KEY_PPAGE, TUI_ANYWHERE, TUI_A_PAGE_UP, "a page up"},
    {KEY_NPAGE, TUI_ANYWHERE, TUI_A_PAGE_DOWN, "a page down"},
    {KEY_HOME, TUI_ANYWHERE, TUI_A_HOME, "to the first"},
    {'g', TUI_ANYWHERE, TUI_A_HOME, "to the first"},
    {KEY_END, TUI_ANYWHERE, TUI_A_END, "to the last"},
    {'G', TUI_ANYWHERE, TUI_A_END, "to the last"},

    {'a', TUI_FACES, TUI_A_SIDE, "switch between side A and side B"},
    {'e', TUI_FACES, TUI_A_EXTRACT, "extract the faces of this side's source"},
    {' ', TUI_FACES, TUI_A_MARK, "mark or unmark the face"},
    {'d', TUI_FACES, TUI_A_DELETE, "delete the marked faces, or the face (into trash/)"},
    {'u', TUI_FACES, TUI_A_UNDO, "undo the last delete or reject"},
    {'s', TUI_FACES, TUI_A_SORT, "sort by identity, blur, size, pose, name (cycles)"},
    {'r', TUI_FACES, TUI_A_REJECT, "reject the faces further than the threshold from this one"},
    {'-', TUI_FACES, TUI_A_STRICTER, "lower the reject threshold by 0.05 (stricter)"},
    {'+', TUI_FACES, TUI_A_LOOSER, "raise the reject threshold by 0.05 (looser)"},
    {'=', TUI_FACES, TUI_A_LOOSER, "raise the reject threshold by 0.05 (looser)"},
    {'f', TUI_FACES, TUI_A_FRAME, "show the frame the face came from, box and landmarks"},
    {'\n', TUI_FACES, TUI_A_FRAME, "show the frame the face came from"},

    {'t', TUI_TRAIN, TUI_A_TRAIN_START, "start training (or attach to the running trainer)"},
    {'p', TUI_TRAIN, TUI_A_TRAIN_PAUSE, "pause or resume training"},
    {'x', TUI_TRAIN, TUI_A_TRAIN_STOP, "save and stop training"},
    {'w', TUI_TRAIN, TUI_A_TRAIN_SAVE, "save now (checkpoint and preview)"},
    {'v', TUI_TRAIN, TUI_A_PREVIEW, "reload the preview grid"},
    {'L', TUI_TRAIN, TUI_A_LOG_SCALE, "loss axis: log or linear"},
    {'m', TUI_TRAIN, TUI_A_SMOOTH, "smooth the loss curves or not"},

    {'i', TUI_CONVERT, TUI_A_CONVERT_INPUT, "input: the next source of the project"},
    {'c', TUI_CONVERT, TUI_A_CONVERT_COLOUR, "colour matching: avg, rct, hist, none (cycles)"},
    {'M', TUI_CONVERT, TUI_A_CONVERT_MASK, "mask: extended, components, box (cycles)"},
    {'S', TUI_CONVERT, TUI_A_CONVERT_SWAP, "direction: A to B or B to A"},
    {'P', TUI_CONVERT, TUI_A_CONVERT_PREVIEW, "preview one frame, before and after"},
    {'R', TUI_CONVERT, TUI_A_CONVERT_RUN, "convert the input into output/"},
    {'x', TUI_CONVERT, TUI_A_CONVERT_STOP, "stop the conversion (nothing is kept)"},
    {0, 0, TUI_A_NONE, NULL},
};

tui_action tui_key_action(int key, tui_panel_id focus)
{
    tui_action global = TUI_A_NONE;
    for (const tui_key *k = tui_keys; k->key; k++) {
        if (k->key != key) continue;
        if (k->where == (int)focus) return k->action;
        if (k->where == TUI_ANYWHERE && global == TUI_A_NONE) global = k->action;
    }
    return global;
}

const char *tui_key_name(char *buf, int n, int key)
{
    static const struct {
        int key;
        const char *name;
    } named[] = {{' ', "Space"},      {'\t', "Tab"},       {'\n', "Enter"},    {KEY_BTAB, "S-Tab"},
                 {KEY_UP, "Up"},      {KEY_DOWN, "Down"},  {KEY_LEFT, "Left"}, {KEY_RIGHT, "Right"},
                 {KEY_PPAGE, "PgUp"}, {KEY_NPAGE, "PgDn"}, {KEY_HOME, "Home"}, {KEY_END, "End"},
                 {KEY_F(1), "F1"}};
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
        if (named[i].key == key) {
            snprintf(buf, (size_t)n, "%s", named[i].name);
            return buf;
        }
    if (key > 0 && key < 32)
        snprintf(buf, (size_t)n, "Ctrl-%c", key + '@');
    else if (key > 32 && key < 127)
        snprintf(buf, (size_t)n, "%c", key);
    else
        snprintf(buf, (size_t)n, "key %d", key);
    return buf;
}

void tui_keys_write_man(FILE *f)
{
    int where = -2;
    for (const tui_key *k = tui_keys; k->key; k++) {
        if (k->where != where) {
            where = k->where;
            fprintf(f, ".SS %s\n",
                    where == TUI_ANYWHERE ? "Anywhere" : tui_panel_name((tui_panel_id)where));
        }
        char name[32];
        tui_key_name(name, sizeof name, k->key);
        fprintf(f, ".TP\n.B %s\n%s\n", name, k->help);
    }
}
