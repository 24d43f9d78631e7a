/* keys.h: the workbench's one key table, {key, where, action, help}. The dispatcher looks keys up
 * in it and the help screen and the man page's KEYS section are printed from it, so a binding
 * and its description cannot drift apart. */
#ifndef VS_TUI_KEYS_H
#define VS_TUI_KEYS_H

#include <stdio.h>

#include "layout.h"

typedef enum tui_action {
    TUI_A_NONE,
    /* anywhere */
    TUI_A_QUIT,
    TUI_A_HELP,
    TUI_A_REDRAW,
    TUI_A_NEXT_PANEL,
    TUI_A_PREV_PANEL,
    TUI_A_GOTO_PROJECT,
    TUI_A_GOTO_FACES,
    TUI_A_GOTO_TRAIN,
    TUI_A_GOTO_CONVERT,
    TUI_A_GOTO_LOG,
    /* moving in a list or grid */
    TUI_A_UP,
    TUI_A_DOWN,
    TUI_A_LEFT,
    TUI_A_RIGHT,
    TUI_A_PAGE_UP,
    TUI_A_PAGE_DOWN,
    TUI_A_HOME,
    TUI_A_END,
    /* faces */
    TUI_A_SIDE,
    TUI_A_EXTRACT,
    TUI_A_MARK,
    TUI_A_DELETE,
    TUI_A_UNDO,
    TUI_A_SORT,
    TUI_A_REJECT,
    TUI_A_STRICTER,
    TUI_A_LOOSER,
    TUI_A_FRAME,
    /* training */
    TUI_A_TRAIN_START,
    TUI_A_TRAIN_PAUSE,
    TUI_A_TRAIN_STOP,
    TUI_A_TRAIN_SAVE,
    TUI_A_PREVIEW,
    TUI_A_LOG_SCALE,
    TUI_A_SMOOTH,
    /* conversion */
    TUI_A_CONVERT_INPUT,
    TUI_A_CONVERT_COLOUR,
    TUI_A_CONVERT_MASK,
    TUI_A_CONVERT_SWAP,
    TUI_A_CONVERT_PREVIEW,
    TUI_A_CONVERT_RUN,
    TUI_A_CONVERT_STOP,
    TUI_NACTIONS
} tui_action;

/* Where a binding applies: anywhere, or in one panel (the focused one). */
#define TUI_ANYWHERE (-1)

typedef struct tui_key {
    int key;   /* a character or a curses KEY_ code */
    int where; /* TUI_ANYWHERE or a tui_panel_id */
    tui_action action;
    const char *help; /* one line, for the help screen and the man page */
} tui_key;

/* The table, ended by an entry with key 0. */
extern const tui_key tui_keys[];

/* The action of key in the focused panel: the panel's own binding first, then the global one. */
tui_action tui_key_action(int key, tui_panel_id focus);

/* The key's name as the help shows it: "q", "Space", "Ctrl-L", "Up", "PgDn". */
const char *tui_key_name(char *buf, int n, int key);

/* The KEYS section of visage(1), in man(7) markup, from the table. */
void tui_keys_write_man(FILE *f);

#endif
