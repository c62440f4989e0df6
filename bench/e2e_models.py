"""FlashOmni end-to-end benchmark, models: diffusers FLUX.1-dev-, HunyuanVideo- and Wan2.1-1.3B-
shaped transformers with random weights at the real shapes (no downloads), their inputs and
forward functions. Used by bench/e2e_bench.py.

Each builder returns (model, latents, forward, apply, meta, dense_setup): forward(x, sigma) is the
velocity, apply(engine) installs FlashOmni and returns the undo callable, meta describes the
shape (blocks used of full_blocks: [double, single] or [blocks, 0]; query_score the engine
default for the model when --query-score is not given), dense_setup (or None) prepares the dense
arm.
"""

import contextlib

import torch

FLUX_FULL = (19, 38)
HUNYUAN_FULL = (20, 40)
WAN_FULL = (30, 0)  # Wan2.1-T2V-1.3B: 30 blocks, one self-attention (attn1) each


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


def build_wan(args, device, dtype):
    """Wan2.1-T2V-1.3B shape: 12 heads x 128 (hidden 1536), FFN 8960, umT5 text (4096 wide,
    512 tokens) in the cross-attention only. 480 x 832, 81 frames -> latents 21 x 60 x 104,
    patches 1 x 2 x 2 -> 21 x 30 x 52 = 32760 video tokens in self-attention. No text in the
    self-attention sequence: the engine's query caching needs the output-change score (meta
    query_score)."""
    from diffusers import WanTransformer3DModel

    from flashomni.diffusers import apply_wan

    if args.smoke_cpu:
        cfg = dict(num_layers=2, num_attention_heads=2, attention_head_dim=64, ffn_dim=64,
                   text_dim=32, freq_dim=32)
        frames, height, width, n_txt = 4, 16, 18, 24  # 4 x 8 x 9 = 288 tokens
    else:
        cfg = dict(num_layers=args.wan_blocks, num_attention_heads=12, attention_head_dim=128,
                   ffn_dim=8960, text_dim=4096, freq_dim=256)
        frames, height, width, n_txt = args.wan_frames, args.wan_height, args.wan_width, 512
    torch.manual_seed(0)
    with default_dtype_device(dtype, device):
        model = WanTransformer3DModel(patch_size=(1, 2, 2), in_channels=16, out_channels=16,
                                      cross_attn_norm=True, qk_norm="rms_norm_across_heads",
                                      eps=1e-6, rope_max_seq_len=1024,
                                      **cfg).eval().requires_grad_(False)
    g = torch.Generator(device=device).manual_seed(1)
    ctx = torch.randn(1, n_txt, cfg["text_dim"], device=device, dtype=dtype, generator=g)
    latents = torch.randn(1, 16, frames, height, width, device=device, generator=g)

    def forward(x, sigma):
        return model(hidden_states=x.to(dtype), timestep=(sigma * 1000).reshape(1),
                     encoder_hidden_states=ctx, return_dict=False)[0].float()

    n_vid = frames * (height // 2) * (width // 2)
    meta = dict(tokens=n_vid, video_tokens=n_vid, text_tokens=0, cross_attention_text=n_txt,
                text="none (cross-attention only)", latent_frames=frames, latent_height=height,
                latent_width=width, heads=cfg["num_attention_heads"],
                head_dim=cfg["attention_head_dim"], double_blocks=cfg["num_layers"],
                single_blocks=0, full_blocks=list(WAN_FULL), query_score="output_change",
                note="blocks are WanTransformerBlocks (counted as double_blocks); FlashOmni "
                     "runs their self-attention, the cross-attention is stock")
    return model, latents, forward, lambda engine: apply_wan(model, engine), meta, None
