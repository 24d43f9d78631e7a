/* original.c: Faceswap's Original model (plugins/train/model/original.py), the first deepfakes
 * architecture: 64 px in and out, an encoder of four strided 5x5 convolutions and two dense
 * layers (latent 1024; lowmem: three convolutions and latent 512), decoders of three upscale
 * blocks, and an optional learned-mask branch beside the face branch. 82,062,470 parameters
 * (lowmem 60,565,126) without the mask branch. */
#include "../model.h"

static void build(model *m)
{
    const int lowmem = m->opt.lowmem;
    mdl_net *e = &m->enc;
    mdl_net_begin(e, "encoder", 64, 64, 3);
    int x = mdl_conv_block(e, -1, mdl_width(m, 128));
    x = mdl_conv_block(e, x, mdl_width(m, 256));
    x = mdl_conv_block(e, x, mdl_width(m, 512));
    if (!lowmem) x = mdl_conv_block(e, x, mdl_width(m, 1024));
    x = mdl_dense(e, x, "dense_0", 1, 1, mdl_width(m, lowmem ? 512 : 1024));
    x = mdl_dense(e, x, "dense_1", 4, 4, mdl_width(m, 1024));
    mdl_upscale_block(e, x, mdl_width(m, 512));
    static const int widths[] = {256, 128, 64};
    mdl_plain_decoders(m, 8, 512, widths, 3);
}

const mdl_arch mdl_arch_original = {
    .name = "original",
    .help = "Faceswap's Original: 64 px, latent 1024 (lowmem: 512)",
    .input_size = 64,
    .output_size = 64,
    .build = build,
};
