"""Measuring a detector: recall, AP, false positives and operating points on the kit's
validation splits (`evaluate`), and the WIDER FACE benchmark's protocol (`wider_eval`)."""
