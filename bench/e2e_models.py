"""FlashOmni end-to-end benchmark, models: diffusers FLUX.1-dev- and HunyuanVideo-shaped
transformers with random weights at the real shapes (no downloads), their inputs and forward
functions. Used by bench/e2e_bench.py.
"""

import contextlib

import torch

FLUX_FULL = (19, 38)
HUNYUAN_FULL = (20, 40)


@contextlib.contextmanager
def default_dtype_device(dtype, device):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(old)


def build_flux(args, device, dtype):
    from diffusers import FluxTransformer2DModel

    from flashomni.diffusers import apply_flux

    if args.smoke_cpu:
        cfg = dict(num_layers=1, num_single_layers=2, attention_head_dim=64,
                   num_attention_heads=2, joint_attention_dim=64, pooled_projection_dim=32,
                   axes_dims_rope=(16, 24, 24), in_channels=16, guidance_embeds=True)
        side, n_txt, ctx_dim, pooled_dim = 16, 64, 64, 32
    else:
        # FLUX.1-dev: 1024 x 1024 -> 128 x 128 latents, 2 x 2 packed -> 64 x 64 = 4096 tokens.
        cfg = dict(num_layers=args.flux_double, num_single_layers=args.flux_single,
                   attention_head_dim=128, num_attention_heads=24, joint_attention_dim=4096,
                   pooled_projection_dim=768, axes_dims_rope=(16, 56, 56), in_channels=64,
                   guidance_embeds=True)
        side, n_txt, ctx_dim, pooled_dim = 64, 512, 4096, 768
    torch.manual_seed(0)
    with default_dtype_device(dtype, device):
        model = FluxTransformer2DModel(patch_size=1, **cfg).eval().requires_grad_(False)
    g = torch.Generator(device=device).manual_seed(1)
    ctx = torch.randn(1, n_txt, ctx_dim, device=device, dtype=dtype, generator=g)
    pooled = torch.randn(1, pooled_dim, device=device, dtype=dtype, generator=g)
    img_ids = torch.zeros(side * side, 3, device=device)
    img_ids[:, 1] = torch.arange(side, device=device).repeat_interleave(side)
    img_ids[:, 2] = torch.arange(side, device=device).repeat(side)
    txt_ids = torch.zeros(n_txt, 3, device=device)
    latents = torch.randn(1, side * side, cfg["in_channels"], device=device, generator=g)
    guidance = torch.full((1,), 3.5, device=device)

    def forward(x, sigma):
        return model(hidden_states=x.to(dtype), encoder_hidden_states=ctx,
                     pooled_projections=pooled, timestep=sigma.reshape(1),
                     img_ids=img_ids, txt_ids=txt_ids, guidance=guidance,
                     return_dict=False)[0].float()

    meta = dict(tokens=side * side + n_txt, image_tokens=side * side, text_tokens=n_txt,
                text="first", heads=cfg["num_attention_heads"],
                head_dim=cfg["attention_head_dim"], double_blocks=cfg["num_layers"],
                single_blocks=cfg["num_single_layers"], full_blocks=list(FLUX_FULL))
    return model, latents, forward, lambda engine: apply_flux(model, engine), meta, None


def build_hunyuan(args, device, dtype):
    from diffusers import HunyuanVideoTransformer3DModel
    from diffusers.models.transformers.transformer_hunyuan_video import (
        HunyuanVideoAttnProcessor2_0,
    )

    from flashomni.diffusers import apply_hunyuan_video

    if args.smoke_cpu:
        cfg = dict(num_layers=1, num_single_layers=1, num_attention_heads=2,
                   attention_head_dim=64, text_embed_dim=64, pooled_projection_dim=32,
                   rope_axes_dim=(16, 24, 24), num_refiner_layers=1)
        frames, size, n_txt, ctx_dim, pooled_dim = 2, 16, 64, 64, 32
    else:
        cfg = dict(num_layers=args.hy_double, num_single_layers=args.hy_single,
                   num_attention_heads=24, attention_head_dim=128, text_embed_dim=4096,
                   pooled_projection_dim=768, rope_axes_dim=(16, 56, 56), num_refiner_layers=2)
        frames, size, n_txt, ctx_dim, pooled_dim = args.hy_frames, args.hy_size, 256, 4096, 768
    torch.manual_seed(0)
    with default_dtype_device(dtype, device):
        model = HunyuanVideoTransformer3DModel(in_channels=16, out_channels=16, patch_size=2,
                                               patch_size_t=1, guidance_embeds=True,
                                               **cfg).eval().requires_grad_(False)
    g = torch.Generator(device=device).manual_seed(1)
    ctx = torch.randn(1, n_txt, ctx_dim, device=device, dtype=dtype, generator=g)
    pooled = torch.randn(1, pooled_dim, device=device, dtype=dtype, generator=g)
    mask = torch.ones(1, n_txt, device=device, dtype=torch.int64)  # every text token valid
    latents = torch.randn(1, 16, frames, size, size, device=device, generator=g)
    guidance = torch.full((1,), 6000.0, device=device, dtype=dtype)

    def forward(x, sigma):
        return model(hidden_states=x.to(dtype), timestep=(sigma * 1000).reshape(1),
                     encoder_hidden_states=ctx, encoder_attention_mask=mask,
                     pooled_projections=pooled, guidance=guidance, return_dict=False)[0].float()

    class DenseNoMask(HunyuanVideoAttnProcessor2_0):
        """The stock processor without the all-true [B, 1, 1, N] mask the model always builds,
        so SDPA may pick cuDNN (a mask rules it out) — fair to the dense arm."""

        def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                     image_rotary_emb=None):
            return super().__call__(attn, hidden_states, encoder_hidden_states, None,
                                    image_rotary_emb)

    def dense_setup():
        for block in list(model.transformer_blocks) + list(model.single_transformer_blocks):
            block.attn.set_processor(DenseNoMask())

    n_vid = frames * (size // 2) ** 2
    meta = dict(tokens=n_vid + n_txt, video_tokens=n_vid, text_tokens=n_txt, text="last",
                latent_frames=frames, latent_size=size, heads=cfg["num_attention_heads"],
                head_dim=cfg["attention_head_dim"], double_blocks=cfg["num_layers"],
                single_blocks=cfg["num_single_layers"], full_blocks=list(HUNYUAN_FULL),
                dense_note="dense arm drops the model's all-true text mask so SDPA may use cuDNN")
    return model, latents, forward, lambda engine: apply_hunyuan_video(model, engine), meta, \
        dense_setup
