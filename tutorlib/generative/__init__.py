"""Generative models (lesson 08): VAEs and β-VAEs, DCGAN and its stabilising tricks, a caption-conditioned
generator, sample-quality measures (Fréchet distance, mode coverage) and a latent-space explorer widget.

>>> from tutorlib.generative import ConvVAE, train_vae, GAN, train_gan, frechet_distance_features, LatentExplorer
"""

from tutorlib.generative.gan import (GAN, GANRun, GANStep, DCGANDiscriminator, DCGANGenerator, dcgan_init,
                                     make_optimizers, train_gan)
from tutorlib.generative.quality import (classifier_features, conditional_accuracy, frechet_distance,
                                         frechet_distance_features, gaussian_stats, mode_coverage, predict_classes,
                                         SampleJudge, train_digit_classifier)
from tutorlib.generative.vae import (ConvVAE, VAEOutput, beta_sweep, elbo_terms, encode_dataset, evaluate_vae,
                                     kl_standard_normal, latent_traversal, recon_loss, reparameterize, train_vae,
                                     vae_step_fn)
from tutorlib.generative.widgets import LatentExplorer, interpolate, latent_explorer, slerp

__all__ = [
    "ConvVAE", "VAEOutput", "reparameterize", "kl_standard_normal", "recon_loss", "elbo_terms", "vae_step_fn",
    "train_vae", "evaluate_vae", "encode_dataset", "latent_traversal", "beta_sweep",
    "GAN", "GANRun", "GANStep", "DCGANGenerator", "DCGANDiscriminator", "dcgan_init", "make_optimizers", "train_gan",
    "gaussian_stats", "frechet_distance", "frechet_distance_features", "classifier_features", "predict_classes",
    "mode_coverage", "conditional_accuracy", "train_digit_classifier", "SampleJudge",
    "interpolate", "slerp", "LatentExplorer", "latent_explorer",
]
