"""Train the tiny text-to-video token prior on a frozen tokenizer, then assemble the pipeline folder.

    python examples/recipes/train_tiny_prior.py --tokenizer runs/t2v-tokenizer/final \
        --data data/t2v-centred/train --output runs/tiny-prior --steps 1500 --eval-every 250

Every ``--eval-every`` steps the prior samples the 8 colour/direction prompts
(``pyratok_hf.evaluation.prompt_following.colour_direction_prompts``), the tokenizer decodes them and the
weight-free checker scores them, so the run's history (OUTPUT/final/training_log.json) is a prompt-following
curve, not only L_AR. OUTPUT/pipeline is the assembled ``PyraTokT2VPipeline``.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokenizer", default="runs/t2v-tokenizer/final")
    parser.add_argument("--data", default="data/t2v-centred/train")
    parser.add_argument("--output", default="runs/tiny-prior")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--guidance-scale", type=float, default=3.0)
    parser.add_argument("--max-clips", type=int, default=None, help="tokenize at most N clips of --data")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--mode", choices=("next_scale", "token"), default="next_scale",
                        help="the prior's order: one pass per level (fast sampling) or token by token (coherent levels)")
    parser.add_argument("--init-prior", default=None,
                        help="continue this prior folder (fresh AdamW, the given --lr and schedule) instead of a new one")
    parser.add_argument("--flip-copies", action="store_true",
                        help="add a horizontally flipped copy of every clip, 'left' and 'right' swapped in its caption")
    args = parser.parse_args(argv)

    import torch

    from pyratok_hf import PyraTokModel
    from pyratok_hf.data.datasets import VideoFolderDataset
    from pyratok_hf.evaluation.prompt_following import colour_direction_prompts, prompt_following_report
    from pyratok_hf.prior import PyraTokPriorConfig, PyraTokPriorModel
    from pyratok_hf.prior.training import build_t2v_pipeline, load_text_encoder, train_prior
    from pyratok_hf.prior.text import encode_prompts

    tokenizer = PyraTokModel.from_pretrained(args.tokenizer).eval()
    data = VideoFolderDataset(args.data, num_frames=17, size=(64, 64), start="random")
    if args.max_clips:
        data = torch.utils.data.Subset(data, range(min(args.max_clips, len(data))))
    if args.flip_copies:
        flipped = VideoFolderDataset(args.data, num_frames=17, size=(64, 64), start="random", hflip_prob=1.0)
        if args.max_clips:
            flipped = torch.utils.data.Subset(flipped, range(min(args.max_clips, len(flipped))))
        data = torch.utils.data.ConcatDataset([data, flipped])
    prompts = colour_direction_prompts()
    text_tokenizer, text_encoder = load_text_encoder(tokenizer.config.text_encoder_name_or_path)

    def prompt_following(prior) -> dict:
        states, mask = encode_prompts(text_tokenizer, text_encoder, prompts, prior.config.text_max_length, prior.config.text_hidden_layer, "cpu")
        ids = prior.generate(states.float(), mask, grids=tokenizer.token_grids(17, 64, 64), guidance_scale=args.guidance_scale,
                             generator=torch.Generator().manual_seed(0))
        videos = tokenizer.decode(token_ids=ids, output_shape=(17, 64, 64)).sample.clamp(-1, 1)
        report = prompt_following_report(list(videos), prompts)
        m = report["matched"]
        return {"colour_hits": round(m["color_accuracy"] * m["num_color"]), "direction_hits": round(m["direction_accuracy"] * m["num_direction"])}

    prior = train_prior(
        tokenizer, data, os.path.join(args.output, "final"), steps=args.steps, batch_size=args.batch_size,
        prior=PyraTokPriorModel.from_pretrained(args.init_prior) if args.init_prior else None,
        prior_config=None if args.init_prior else PyraTokPriorConfig.for_tokenizer(tokenizer.config, mode=args.mode),
        lr=args.lr, warmup_steps=100, num_frames=17, height=64, width=64, num_threads=args.threads, seed=0,
        text_encoder=text_encoder, text_tokenizer=text_tokenizer, eval_fn=prompt_following, eval_every=args.eval_every,
        save_every=args.eval_every,
    )
    build_t2v_pipeline(args.tokenizer, prior, output_dir=os.path.join(args.output, "pipeline"))
    print(f"prior and pipeline written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
