"""Fine-tune PyraTok on a folder of videos with captions, with the HF Trainer and PEFT LoRA.

The folder holds videos plus a metadata.jsonl ({"file_name": "clip.mp4", "text": "a caption"} per line).
Without --data, a small captioned corpus is generated first.

    python examples/finetune_lora_trainer.py [--data FOLDER] [--steps 20] [--output runs/example-lora]
"""

import argparse
import os

from transformers import Trainer, TrainingArguments

from pyratok_hf import PyraTokModel, bundled_model_path
from pyratok_hf.data import build_corpus, collate_video_text, load_video_text_dataset

parser = argparse.ArgumentParser()
parser.add_argument("--data", default=None)
parser.add_argument("--steps", type=int, default=20)
parser.add_argument("--output", default="runs/example-lora")
args = parser.parse_args()

if args.data is None:
    args.data = os.path.join(args.output, "corpus", "train")
    build_corpus(os.path.dirname(args.data), seed=1, num_train=16, num_val=4, num_long_train=0, num_long_val=0, progress=False)
dataset = load_video_text_dataset(args.data, num_frames=9, size=(64, 64), random_crop=True, seed=0)

model = PyraTokModel.from_pretrained(bundled_model_path())
model.backbone.add_lora(rank=16, alpha=32)  # the frozen Wan encoder gets LoRA adapters (paper: r=16, alpha=32)
trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
print(f"trainable parameters: {trainable / 1e6:.2f}M of {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M")


def collate(batch):
    out = collate_video_text(batch)
    return {"pixel_values": out["pixel_values"], "text": out["text"]}


trainer = Trainer(
    model=model,
    args=TrainingArguments(
        output_dir=args.output, max_steps=args.steps, per_device_train_batch_size=2, learning_rate=5e-4,
        logging_steps=5, save_strategy="no", report_to=[], remove_unused_columns=False, use_cpu=True,
    ),
    train_dataset=dataset,
    data_collator=collate,
)
trainer.train()
model.backbone.merge_lora()  # fold the adapters into the backbone: the saved model needs no peft
model.save_pretrained(os.path.join(args.output, "final"))
print(f"saved the fine-tuned tokenizer to {os.path.join(args.output, 'final')}")
