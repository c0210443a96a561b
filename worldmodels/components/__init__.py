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
    cyclegan     CycleGAN networks for 64x64 frames: U-Net or ResNet generators, PatchGAN discriminators
    cyclegan_updates  the image pool, the weighted losses and one CycleGAN training step
    train_cyclegan    the ``train-cyclegan`` stage: a CycleGAN between two unpaired rollout folders, with grids
    translator   an observation wrapper mapping each frame through a trained CycleGAN generator
    char_lstm    Chollet's character LSTM, (B, T) indices -> (B, V) logits, with temperature sampling and
                 ``generate(seed_text, length, temperature)``
    train_text   the ``train-text`` stage: the character LSTM trained on a text file, with sample lines
    lstm_policy  an LSTM as a policy's memory: batched ``act(obs, state)``, flat parameters for CMA-ES, and
                 ``run_episodes`` on a Gymnasium vector env

Nothing here is imported by ``worldmodels`` at package import time; ``sb3`` is the only module that imports
stable-baselines3.
"""
