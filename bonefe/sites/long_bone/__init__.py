"""What the long bones (femur, humerus) share and no site owns: the long-bone frame and its
landmark geometry (`frame`), the distal cut and head-cap patches (`patches`), lesion placement on a
ray (`lesions`), the phantoms' building blocks (`phantom`) and Mirels and axial cortical involvement
(`scores`). It imports no site package; the sites import it."""
