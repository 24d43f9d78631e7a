/* lightweight.c: Faceswap's Lightweight model (plugins/train/model/lightweight.py), Original cut
 * down for small GPUs: 64 px, three strided convolutions, latent 512, a 4x4x512 dense reshape and
 * decoders of three upscale blocks (512, 256, 128); an optional learned-mask branch. 51,066,374
 * parameters without the mask branch. */
#include "../model.h"

static void build(model *m)
{
    mdl_net *e = &m->enc;
    mdl_net_begin(e, "encoder", 64, 64, 3);
    int x = mdl_conv_block(e, -1, mdl_width(m, 128));
    x = mdl_conv_block(e, x, mdl_width(m, 256));
    x = mdl_conv_block(e, x, mdl_width(m, 512));
    x = mdl_dense(e, x, "dense_0", 1, 1, mdl_width(m, 512));
    x = mdl_dense(e, x, "dense_1", 4, 4, mdl_width(m, 512));
    mdl_upscale_block(e, x, mdl_width(m, 256));
    static const int widths[] = {512, 256, 128};
    mdl_plain_decoders(m, 8, 256, widths, 3);
}

const mdl_arch mdl_arch_lightweight = {
    .name = "lightweight",
    .help = "Faceswap's Lightweight: 64 px, latent 512, for small cards",
    .input_size = 64,
    .output_size = 64,
    .build = build,
};
