/* blocks_arch.h: a test architecture (test_model.c's gradient check, test_cuda_train.c's GPU
 * step) made of the blocks the published models do not use. */
#ifndef VS_TEST_BLOCKS_ARCH_H
#define VS_TEST_BLOCKS_ARCH_H

#include "model.h"

/* An architecture of the blocks the published two do not use, for the gradient check: a
 * separable conv, a residual block (conv, LeakyReLU 0.2, conv, add, LeakyReLU 0.2) whose input
 * feeds two layers, a pixel shuffle whose output feeds two layers, and a learned mask. */
static void build_blocks(model *m)
{
    mdl_net *e = &m->enc;
    mdl_net_begin(e, "encoder", 64, 64, 3);
    int x = mdl_conv_block(e, -1, 8);
    x = mdl_separable(e, x, "sep_0", 12, 3, 2, NN_ACT_LEAKY, 0.1f);
    int r = mdl_conv(e, x, "res_0a", 12, 3, 1, NN_ACT_LEAKY, 0.2f);
    r = mdl_conv(e, r, "res_0b", 12, 3, 1, NN_ACT_NONE, 0.0f);
    x = mdl_add(e, r, x, "res_0", NN_ACT_LEAKY, 0.2f);
    x = mdl_conv_block(e, x, 16);
    x = mdl_dense(e, x, "dense_0", 1, 1, 32);
    x = mdl_dense(e, x, "dense_1", 4, 4, 32);
    mdl_upscale_block(e, x, 16);
    for (int s = 0; s < 2; s++) {
        mdl_net *d = &m->dec[s];
        mdl_net_begin(d, s ? "decoder_b" : "decoder_a", 8, 8, 16);
        int u = mdl_upscale_block(d, -1, 16);
        int a = mdl_conv(d, u, "branch_a", 16, 3, 1, NN_ACT_LEAKY, 0.1f);
        int b = mdl_conv(d, u, "branch_b", 16, 1, 1, NN_ACT_RELU, 0.0f);
        int y = mdl_add(d, a, b, "join", NN_ACT_NONE, 0.0f);
        y = mdl_upscale_block(d, y, 8);
        y = mdl_upscale_block(d, y, 8);
        d->face_out = mdl_conv_output(d, y, "face_out", 3);
        int k = mdl_upscale_block(d, u, 4);
        k = mdl_upscale_block(d, k, 4);
        d->mask_out = mdl_conv_output(d, k, "mask_out", 1);
    }
}

static const mdl_arch blocks_arch = {"blocks", "test", 64, 64, build_blocks};

#endif
