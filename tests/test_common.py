"""scikit-learn's common estimator checks, with no expected failures."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skcl import ContinualClassifier, ContinualRegressor


@parametrize_with_checks(
    [ContinualClassifier(random_state=0), ContinualRegressor(random_state=0)]
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
