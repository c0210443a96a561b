"""The books' perception and generative networks as reusable PyTorch modules, trainable on rollout frames.

    blocks       VGG, Inception and ResNet building blocks
    cnn          image encoders by name (mnist, alexnet, vgg, inception, resnet, nature): (B, C, H, W) -> (B, F)
    sb3          any of those encoders as a stable-baselines3 features extractor (imports SB3)
    frame_tasks  supervised targets made from rollouts (the action taken, the sign of the reward)
    train_cnn    the ``train-cnn`` stage: an encoder trained on a frame task, scored on held-out episodes
    gan          DCGAN / WGAN / WGAN-GP generators and critics for 64x64 frames, with ``generate(n)``
    gan_losses   the adversarial losses, the gradient penalty and weight clipping
    gan_updates  one critic update and one generator update under a variant's recipe
    train_gan    the ``train-gan`` stage: a GAN trained on rollout frames, with sample grids

Nothing here is imported by ``worldmodels`` at package import time; ``sb3`` is the only module that imports
stable-baselines3.
"""
