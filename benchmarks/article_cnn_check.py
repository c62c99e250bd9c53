"""The article's headline on its own network: LAMB learns, "LAMB as Adam" (trust ratio 1) does not.

    python benchmarks/article_cnn_check.py [--seed 0] [--epochs 2] [--train-size N]

Trains ``nn.CNN(seed)`` at batch 512 with the rule of the article's code (lr 0.02, betas (0.9,
0.999), weight decay 0.01, no bias correction), once with the trust ratio and once without, and
prints the test accuracy and the seconds of each run. Expected from PyTorch runs of the same
network: LAMB >= 97 % after 2 epochs, the Adam mode near chance (<= 15 %).
"""

from __future__ import annotations

import argparse
import time

from lamb_edu import data, nn, optim, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-size", type=int, default=None, help="use only the first N training images")
    arguments = parser.parse_args()
    mnist = data.load_mnist()
    for use_trust_ratio in (True, False):
        model = nn.CNN(seed=arguments.seed)
        optimizer = optim.LAMB(model.parameters(), lr=0.02, betas=(0.9, 0.999), weight_decay=0.01,
                               bias_correction=False, use_trust_ratio=use_trust_ratio)
        start = time.perf_counter()
        history = train.fit(model, optimizer, mnist, epochs=arguments.epochs, batch_size=512,
                            seed=arguments.seed, train_size=arguments.train_size, progress=False)
        seconds = time.perf_counter() - start
        label = "LAMB" if use_trust_ratio else "LAMB as Adam (trust ratio 1)"
        print(f"{label}: test accuracy {history.epochs[-1]['test_accuracy']:.2%} after {arguments.epochs} epochs, "
              f"{seconds:.0f} s", flush=True)


if __name__ == "__main__":
    main()
