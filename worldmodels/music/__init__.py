"""Music generators from the generative-deep-learning book, trained on the Bach chorales music21 ships.

    data         chorales / MIDI / MusicXML -> note and duration tokens and four-voice piano-rolls, cached (.npz)
    lstm         the LSTM with attention over note and duration tokens, with temperature sampling
    musegan      MuseGAN: chords, style, melody and groove latents, bar generators per track, a 3-D critic
    train        both trained on the shared resumable loop (MuseGAN with the WGAN-GP updates)
    midi         token sequences and piano-rolls written as MIDI files, atomically
    generate     ``music generate``: a trained model of a run folder -> a MIDI file
    composition  the composition env (``envs.composition``) with the trained LSTM as its note scorer
    cli          the ``worldmodels music train|generate`` command
"""
