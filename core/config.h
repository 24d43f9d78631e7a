/* config.h: every setting of visage in one table (section, key, type, range, default, help).
 * The table drives parsing of visage.ini files (inih), the command-line flags that override
 * them, `visage config --dump`, config/visage.ini and man/visage.ini.5, so they cannot drift.
 * Precedence: defaults < ~/.config/visage/visage.ini < PROJECT/visage.ini < flags. */
#ifndef VS_CONFIG_H
#define VS_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "err.h"

#define CFG_CHOICE_LEN 16 /* every CFG_CHOICE field is a char[CFG_CHOICE_LEN] */

typedef enum cfg_type { CFG_INT, CFG_FLOAT, CFG_BOOL, CFG_STRING, CFG_CHOICE } cfg_type;

typedef struct cfg_option {
    const char *section;
    const char *key;
    cfg_type type;
    double min, max;     /* CFG_INT / CFG_FLOAT, inclusive */
    const char *def;     /* default, as written in visage.ini */
    const char *choices; /* CFG_CHOICE: "face|head|legacy" */
    const char *help;    /* one line */
    size_t offset;       /* of the field in vs_config */
} cfg_option;

typedef struct vs_config {
    /* [general] */
    char models[1024]; /* folder of the face-network weights; "" = search the usual places */
    int threads;       /* CPU threads, 0 = all */
    char device[64];   /* auto | cpu | cuda:N */
    /* [project] */
    char source_a[1024], source_b[1024]; /* the videos, images or folders faces come from */
    /* [extract] */
    int every;                      /* every Nth frame of a video */
    int min_size;                   /* smallest face kept, pixels (box side) */
    int max_faces;                  /* most faces kept per frame, 0 = all */
    float threshold;                /* detector score */
    int size;                       /* aligned face size, pixels */
    char centering[CFG_CHOICE_LEN]; /* face | head | legacy */
    float similarity;               /* identity distance counted as the same person */
    int landmark_filter;            /* reject detections whose landmarks are not a plausible face */
    float min_blur;                 /* faces blurrier than this are dropped, 0 = keep all */
    int png_compression;            /* 0-9 */
    /* [train]: the model's shape (fixed when it is created) */
    char model[CFG_CHOICE_LEN];           /* architecture: original | lightweight */
    int lowmem;                           /* Original with encoder width 512 */
    int learn_mask;                       /* decoders also learn the face mask */
    int shrink;                           /* every layer's width divided by this */
    float coverage;                       /* percent of the aligned face the model sees */
    char train_centering[CFG_CHOICE_LEN]; /* face | head | legacy */
    /* [train]: the run */
    char precision[CFG_CHOICE_LEN]; /* auto | fp32 | tf32 | bf16 | fp16 */
    int batch;
    int iterations;     /* stop at this iteration, 0 = train until stopped */
    int save_every;     /* iterations between saves */
    int snapshot_every; /* iterations between kept snapshots, 0 = none */
    int keep_backups;   /* previous saves kept in model/backups */
    float learning_rate;
    float epsilon;              /* Adam's epsilon */
    char loss[CFG_CHOICE_LEN];  /* mae | mse | ssim */
    char loss2[CFG_CHOICE_LEN]; /* none | mae | mse | ssim */
    float loss2_weight;         /* percent */
    int penalized_mask_loss;    /* weight the loss by the face mask */
    float eye_multiplier, mouth_multiplier;
    /* [train]: augmentation */
    float rotation, zoom, shift, flip; /* degrees, percent, percent, percent chance */
    float color_lightness, color_ab;   /* percent */
    int warp;
} vs_config;

extern const cfg_option cfg_options[];
extern const int cfg_n_options;

void cfg_defaults(vs_config *c);

/* Reads an ini file over c. An unknown section or key, or a bad value, is an error naming the
 * file and line ("visage.ini:12: unknown key 'evry' in [extract]"). */
int cfg_load(vs_config *c, const char *path, vs_err *e);

/* Loads ~/.config/visage/visage.ini and then project_dir/visage.ini where they exist
 * (project_dir may be NULL). */
int cfg_load_standard(vs_config *c, const char *project_dir, vs_err *e);

/* Sets one option from text, range- and type-checked; `where` names the origin for messages
 * ("--every", "visage.ini:12"). */
int cfg_set(vs_config *c, const char *section, const char *key, const char *value,
            const char *where, vs_err *e);

const cfg_option *cfg_find(const char *section, const char *key);

/* Value of option o in c as visage.ini text, into buf. */
void cfg_format(char *buf, size_t n, const vs_config *c, const cfg_option *o);

typedef enum cfg_dump_mode { CFG_DUMP_VALUES, CFG_DUMP_DEFAULTS } cfg_dump_mode;

/* A complete visage.ini with a help comment per option (config/visage.ini is the
 * CFG_DUMP_DEFAULTS output). */
void cfg_write_ini(FILE *f, const vs_config *c, cfg_dump_mode mode);

/* The roff body of man/visage.ini.5's OPTIONS section. */
void cfg_write_man(FILE *f);

#endif
